//! Refusals made before the schema runs (body too large, wrong media type, overload, malformed request), answered
//! with the GraphQL error shape — `{"errors": [{"message", "extensions": {"code"}}]}` — so that GraphQL clients,
//! which show `errors`, show them too.

use std::time::Duration;

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
    unavailable(format!("the gateway is overloaded; retry after {retry_after} s"))
}

/// 503 with `Retry-After`: the gateway cannot serve the request now, for the reason `message` gives.
pub(crate) fn unavailable(message: impl Into<String>) -> Response {
    let retry_after = shop_platform::overload::RETRY_AFTER.as_secs();
    let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// 429 with `Retry-After`: this client sent more than its rate limit allows, and may send again after `retry_after`
/// (given in whole seconds, rounded up, at least 1: `Retry-After: 0` would invite an immediate retry that is
/// refused again).
pub(crate) fn too_many_requests(retry_after: Duration) -> Response {
    let seconds = whole_seconds_up(retry_after);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        format!("too many requests from this client; retry after {seconds} s"),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn whole_seconds_up(duration: Duration) -> u64 {
    (duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2_001)), 3);
    }
}
