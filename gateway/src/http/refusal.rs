//! Refusals made before the schema runs (body too large, wrong media type, overload, malformed request), answered
//! with the GraphQL error shape — `{"errors": [{"message", "extensions": {"code"}}]}` — so that GraphQL clients,
//! which show `errors`, show them too.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::schema::errors::ErrorCode;

/// Marks a response as a refusal, with the message it gives, so that the REST face can answer it in its own
/// error format (see `rest::problem_bodies`).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) message: String,
}

/// A refusal with `status`, `code` and a message for the client.
pub(crate) fn refuse(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let body = serde_json::json!({
        "errors": [{ "message": &message, "extensions": { "code": code.as_str() } }]
    });
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(Refused { message });
    response
}

/// 413: the body is larger than `limit` bytes.
pub(crate) fn payload_too_large(limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the {limit} bytes allowed"),
    )
}

/// 503 with `Retry-After`: too many requests in flight.
pub(crate) fn overloaded() -> Response {
    let retry_after = shop_platform::overload::RETRY_AFTER.as_secs();
    let mut response = refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        format!("the gateway is overloaded; retry after {retry_after} s"),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}
