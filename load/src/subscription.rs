//! `follow-order`: what a customer's page does after placing an order — open a WebSocket to the gateway
//! (`graphql-transport-ws`), subscribe to `orderUpdated` and wait for the subscription to complete, which the
//! gateway does once the order can change no more.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::client::Failure;

const ORDER_UPDATED: &str = "subscription($id: ID!) { orderUpdated(id: $id) { id version status } }";
/// The one subscription of each connection.
const SUBSCRIPTION_ID: &str = "1";

/// Follows order `order_id` until its subscription completes, within `timeout`.
pub(crate) async fn follow_order(
    endpoint: &str,
    token: Option<&str>,
    order_id: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    tokio::time::timeout(timeout, follow(endpoint, token, order_id))
        .await
        .unwrap_or_else(|_| Err(Failure::new("TIMEOUT")))
}

async fn follow(endpoint: &str, token: Option<&str>, order_id: &str) -> Result<(), Failure> {
    let url = endpoint.replacen("http", "ws", 1);
    let mut request = url.into_client_request().map_err(|_| Failure::new("WEBSOCKET_URL"))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(request).await.map_err(|_| Failure::new("WEBSOCKET_CONNECT"))?;
    // Credentials go in `connection_init`, as browsers (which cannot set headers on a WebSocket) send them.
    let credentials =
        token.map_or_else(|| json!({}), |token| json!({ "Authorization": format!("Bearer {token}") }));
    let messages = [
        json!({ "type": "connection_init", "payload": credentials }),
        json!({ "type": "subscribe", "id": SUBSCRIPTION_ID,
                "payload": { "query": ORDER_UPDATED, "variables": { "id": order_id } } }),
    ];
    for message in messages {
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|_| Failure::new("WEBSOCKET_SEND"))?;
    }
    let outcome = loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |frame| u16::from(frame.code));
                break Err(Failure::new(format!("WEBSOCKET_CLOSED_{code}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break Err(Failure::new("WEBSOCKET_CLOSED")),
        };
        let message: Value = serde_json::from_str(&text).map_err(|_| Failure::new("INVALID_JSON"))?;
        match message["type"].as_str() {
            Some("ping") => {
                let pong = json!({ "type": "pong" }).to_string();
                socket.send(Message::Text(pong.into())).await.map_err(|_| Failure::new("WEBSOCKET_SEND"))?;
            }
            Some("next") => {
                if let Some(code) = first_error_code(&message["payload"]["errors"]) {
                    break Err(Failure::new(code));
                }
            }
            // `error` carries a list of GraphQL errors: the subscription never started.
            Some("error") => {
                break Err(Failure::new(first_error_code(&message["payload"]).unwrap_or("GRAPHQL_ERROR")));
            }
            Some("complete") => break Ok(()),
            _ => {}
        }
    };
    // The shop gets a clean close either way; a failure to say goodbye changes nothing about the outcome.
    let _ = socket.close(None).await;
    outcome
}

/// The `extensions.code` of the first of `errors`, when there are any.
fn first_error_code(errors: &Value) -> Option<&str> {
    let first = errors.as_array()?.first()?;
    Some(first["extensions"]["code"].as_str().unwrap_or("GRAPHQL_ERROR"))
}
