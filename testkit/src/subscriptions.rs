//! A client of the gateway's GraphQL subscriptions: the `graphql-transport-ws` protocol over a real WebSocket,
//! spoken message by message so tests can see (and misbehave at) every step.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// How long a test waits for the next message before failing.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the gateway sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The handshake succeeded (`connection_ack`).
    Acknowledged,
    /// A result of subscription `id`: `{ data, errors }`.
    Next { id: String, payload: Value },
    /// Subscription `id` failed before it started (a list of GraphQL errors).
    Error { id: String, payload: Value },
    /// Subscription `id` ended.
    Complete { id: String },
    /// The gateway closed the connection.
    Closed { code: u16, reason: String },
}

/// The upgrade request to the gateway's `/graphql` at `base_url`, asking for `graphql-transport-ws`.
fn request(base_url: &str) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    let url = format!("{}/graphql", base_url.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    Ok(request)
}

/// One WebSocket connection to the gateway's `/graphql`.
#[derive(Debug)]
pub struct SubscriptionClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl SubscriptionClient {
    /// Connects to the gateway at `base_url` (`http://host:port`) and completes the handshake, sending `payload`
    /// in `connection_init` (credentials, for example `{"Authorization": "Bearer …"}`).
    pub async fn connect(base_url: &str, payload: Value) -> anyhow::Result<Self> {
        Self::open(base_url).await?.initialise(payload).await
    }

    /// The same over a socket whose receive buffer is `bytes` (and does not grow): a client that stops reading
    /// then stops the gateway's sending after little data, as a slow link would.
    pub async fn connect_with_receive_buffer(
        base_url: &str,
        payload: Value,
        bytes: u32,
    ) -> anyhow::Result<Self> {
        let request = request(base_url)?;
        let authority = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let address =
            tokio::net::lookup_host(authority).await?.next().ok_or_else(|| anyhow::anyhow!("no address"))?;
        let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(address).await?;
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
        Self { socket, next_id: 0 }.initialise(payload).await
    }

    /// Opens the WebSocket without the handshake.
    pub async fn open(base_url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(request(base_url)?).await?;
        Ok(Self { socket, next_id: 0 })
    }

    /// Sends `connection_init` with `payload` and waits for `connection_ack`.
    async fn initialise(mut self, payload: Value) -> anyhow::Result<Self> {
        self.send(json!({ "type": "connection_init", "payload": payload })).await?;
        match self.receive().await? {
            Received::Acknowledged => Ok(self),
            other => anyhow::bail!("expected connection_ack, got {other:?}"),
        }
    }

    /// Starts a subscription; returns its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> anyhow::Result<String> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let payload = json!({ "query": query, "variables": variables });
        self.send(json!({ "type": "subscribe", "id": id, "payload": payload })).await?;
        Ok(id)
    }

    /// Ends subscription `id`.
    pub async fn complete(&mut self, id: &str) -> anyhow::Result<()> {
        self.send(json!({ "type": "complete", "id": id })).await
    }

    /// Sends one protocol message.
    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        Ok(self.socket.send(Message::Text(message.to_string().into())).await?)
    }

    /// The next message from the gateway (answering its pings), or its closing; fails after 30 s of silence.
    pub async fn receive(&mut self) -> anyhow::Result<Received> {
        loop {
            let message = tokio::time::timeout(MESSAGE_TIMEOUT, self.socket.next()).await?;
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or_default();
                    return Ok(Received::Closed { code, reason });
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => anyhow::bail!("the WebSocket failed: {error}"),
                None => return Ok(Received::Closed { code: 1006, reason: "closed without a frame".into() }),
            };
            let message: Value = serde_json::from_str(&text)?;
            let id = || message["id"].as_str().unwrap_or_default().to_owned();
            return Ok(match message["type"].as_str() {
                Some("connection_ack") => Received::Acknowledged,
                Some("next") => Received::Next { id: id(), payload: message["payload"].clone() },
                Some("error") => Received::Error { id: id(), payload: message["payload"].clone() },
                Some("complete") => Received::Complete { id: id() },
                Some("ping") => {
                    self.send(json!({ "type": "pong" })).await?;
                    continue;
                }
                _ => continue,
            });
        }
    }

    /// The results of subscription `id` until it completes, as `field` of each result's `data`; fails on anything
    /// else (an error, another subscription's message, the connection closing).
    pub async fn results_until_complete(&mut self, id: &str, field: &str) -> anyhow::Result<Vec<Value>> {
        let mut results = Vec::new();
        loop {
            match self.receive().await? {
                Received::Next { id: of, payload } if of == id => {
                    anyhow::ensure!(payload.get("errors").is_none(), "subscription {id} failed: {payload}");
                    results.push(payload["data"][field].clone());
                }
                Received::Complete { id: of } if of == id => return Ok(results),
                other => anyhow::bail!("expected results of subscription {id}, got {other:?}"),
            }
        }
    }
}
