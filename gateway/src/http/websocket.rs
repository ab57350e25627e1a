//! GraphQL subscriptions over WebSocket at `/graphql`: the `graphql-transport-ws` protocol (the `graphql-ws`
//! library's), and the legacy `graphql-ws` one (Apollo's `subscriptions-transport-ws`), chosen by the client's
//! `Sec-WebSocket-Protocol`.
//!
//! async-graphql runs the protocol; this module owns the socket, so that the gateway can close it with a reason:
//! - a client that sends no `connection_init` within [`INIT_TIMEOUT`]: `4408`, as the protocol says;
//! - credentials in `connection_init` that do not verify: `4403`, as the protocol says;
//! - a subscriber too slow to read its updates: [`SLOW_SUBSCRIBER`](crate::live::SLOW_SUBSCRIBER), closed even
//!   when the client has stopped reading (a blocked send is abandoned; the closing frame waits at most
//!   [`CLOSE_TIMEOUT`] behind what was already sent, then the connection is dropped).
//!
//! What one connection holds is bounded: each subscription's queue (`SUBSCRIPTION_BUFFER` updates), the socket's
//! write buffer (tungstenite flushes past 128 KiB, so at most that plus one message), and the kernel's buffers.
//! - the gateway shutting down: `1001`.
//!
//! Credentials: the upgrade request's `Authorization` header (checked by the same middleware as every request), or
//! an `Authorization` (any case) value of `Bearer <token>` in the `connection_init` payload, where browser clients
//! must put it.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphqlWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt, future};

use super::{AppState, refusal};
use crate::{auth::Caller, schema::errors::ErrorCode};

/// How long a client may take to send `connection_init` after the upgrade.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the gateway tries to send a closing frame before it drops the connection: a slow reader gets this long
/// to read what was sent before it (and so to learn why it was closed).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest message a client may send (a subscription document and its variables).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The close code for credentials in `connection_init` that do not verify (`graphql-transport-ws`: Forbidden).
const FORBIDDEN: u16 = 4403;
/// The close code for a missing `connection_init` (`graphql-transport-ws`).
const INIT_TIMED_OUT: u16 = 4408;

/// Upgrades a `GET /graphql` asking for a GraphQL WebSocket protocol.
pub(super) fn upgrade(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = protocol(headers) else {
        let message = "ask for the `graphql-transport-ws` (or the legacy `graphql-ws`) subprotocol in \
                       Sec-WebSocket-Protocol";
        return refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message);
    };
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, protocol, state, caller))
        .into_response()
}

/// The first protocol the client offers that the gateway speaks.
fn protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| WebSocketProtocols::from_str(offered.trim()).ok())
}

/// Runs the protocol on `socket` until the client leaves or the gateway closes the connection.
async fn serve(socket: WebSocket, protocol: WebSocketProtocols, state: AppState, caller: Caller) {
    let connection = state.feed.connection();
    let (mut sink, source) = socket.split();
    let input = source.take_while(|message| future::ready(message.is_ok())).filter_map(|message| {
        future::ready(match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
            _ => None,
        })
    });
    let refused = Arc::new(AtomicBool::new(false));
    let on_init = {
        let (authenticator, refused) = (state.authenticator.clone(), refused.clone());
        move |payload: serde_json::Value| async move {
            let caller = match authorization(&payload) {
                Some(value) => authenticator.caller_from_value(value).await.map_err(|error| {
                    refused.store(true, Ordering::SeqCst);
                    async_graphql::Error::new(error.description())
                })?,
                None => caller,
            };
            let mut data = Data::default();
            data.insert(caller);
            Ok(data)
        }
    };
    let mut connection_data = Data::default();
    connection_data.insert(connection.clone());
    let messages = GraphqlWebSocket::new(state.schema.clone(), input, protocol)
        .connection_data(connection_data)
        .on_connection_init(on_init);
    futures::pin_mut!(messages);

    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut initialised = false;
    let close = loop {
        let message = tokio::select! {
            // A subscription's stream ends when its connection is being closed: the closing must win, or its
            // client would take the end for a normal completion.
            biased;
            frame = connection.closed() => break Some((frame.code, frame.reason)),
            () = &mut init_deadline, if !initialised => {
                break Some((INIT_TIMED_OUT, "Connection initialisation timeout".to_owned()));
            }
            message = messages.next() => message,
        };
        let text = match message {
            Some(WsMessage::Text(text)) => text,
            Some(WsMessage::Close(code, reason)) => {
                let code = if refused.load(Ordering::SeqCst) { FORBIDDEN } else { code };
                break Some((code, reason));
            }
            None => break None,
        };
        initialised = initialised || is_acknowledgement(&text);
        // A client that stopped reading makes this wait for good: the connection's closing (a subscription that
        // overflowed its queue asks for it) must still win.
        tokio::select! {
            frame = connection.closed() => break Some((frame.code, frame.reason)),
            sent = sink.send(Message::Text(text.into())) => if sent.is_err() { break None },
        }
    };
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
        // Best effort: a client that stopped reading never takes it, and the connection is dropped anyway.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
}

/// The `Authorization` value (any case of the key) of a `connection_init` payload, at its top level or under
/// `headers`, as clients variously send it.
fn authorization(payload: &serde_json::Value) -> Option<&str> {
    fn find(object: &serde_json::Value) -> Option<&str> {
        object.as_object()?.iter().find(|(key, _)| key.eq_ignore_ascii_case("authorization"))?.1.as_str()
    }
    find(payload).or_else(|| payload.get("headers").and_then(find))
}

/// Whether `text` is the server's `connection_ack`.
fn is_acknowledgement(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|message| message.get("type").and_then(|kind| kind.as_str()) == Some("connection_ack"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_are_found_where_clients_put_them() {
        assert_eq!(authorization(&json!({ "Authorization": "Bearer a" })), Some("Bearer a"));
        assert_eq!(authorization(&json!({ "authorization": "Bearer b" })), Some("Bearer b"));
        assert_eq!(authorization(&json!({ "headers": { "Authorization": "Bearer c" } })), Some("Bearer c"));
        assert_eq!(authorization(&json!({})), None);
        assert_eq!(authorization(&serde_json::Value::Null), None);
    }

    #[test]
    fn protocols_are_chosen_from_what_the_client_offers() {
        let offered = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
            protocol(&headers)
        };

        assert_eq!(offered("graphql-transport-ws"), Some(WebSocketProtocols::GraphQLWS));
        assert_eq!(offered("chat, graphql-ws"), Some(WebSocketProtocols::SubscriptionsTransportWS));
        assert_eq!(offered("chat"), None);
        assert_eq!(protocol(&HeaderMap::new()), None);
    }
}
