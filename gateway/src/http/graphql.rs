//! GraphQL over HTTP: `POST /graphql` with a JSON body, `GET /graphql?query=…` for queries (a `GET` upgrading to
//! a WebSocket goes to [`websocket`](super::websocket)).
//!
//! What is refused before the schema runs, and why:
//! - a POST body that is not `application/json` (`415`): HTML forms can send `text/plain`, form-encoded and
//!   multipart bodies to any origin without asking, so accepting them would let any web page run mutations
//!   against a gateway its visitor can reach (CSRF); JSON needs a CORS preflight the gateway does not grant by
//!   default. Multipart also means uploads, which the schema has none of;
//! - a body above the configured size (`413`), counted while it is read, so it is never held whole;
//! - a document nested deeper than [`MAX_NESTING`] (`400`): checked on the text, before any recursive parser sees
//!   it;
//! - a mutation over GET (`405`): a link or an image tag could trigger it.
//!
//! An answer larger than the configured size is replaced by an error: the query costs bound the number of items,
//! this bounds the bytes (descriptions are long).

use async_graphql::{
    ServerError,
    http::parse_query_string,
    parser::{parse_query, types::OperationType},
};
use axum::{
    body::Body,
    extract::{
        State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use super::{AppState, refusal};
use crate::{
    schema::{
        self,
        errors::{ErrorCode, with_code},
    },
    services::Call,
};

/// Deepest nesting of `{`, `[` and `(` a document may have. The deepest useful query, the standard introspection
/// query, nests about 15 deep; GraphQL's grammar recurses on nesting, so text nested deeper is refused unparsed.
pub(crate) const MAX_NESTING: usize = 64;

/// The media type of GraphQL responses (GraphQL over HTTP).
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

pub(super) async fn post(
    State(state): State<AppState>,
    call: Call,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_json(&headers) {
        return refusal::refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send GraphQL requests as `Content-Type: application/json`",
        );
    }
    let body = match read_bounded(body, state.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("the body is not a GraphQL request in JSON: {error}");
            return refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message);
        }
    };
    execute(&state, call, request).await
}

/// Queries only: a mutation over GET could be triggered by a link or an image tag (CSRF). A GET asking for a
/// WebSocket is handed to [`websocket`](super::websocket) (subscriptions).
pub(super) async fn get(
    State(state): State<AppState>,
    call: Call,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return super::websocket::upgrade(state, call.caller().clone(), &headers, upgrade);
    }
    let request = match parse_query_string(uri.query().unwrap_or_default()) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("the query string is not a GraphQL request: {error}");
            return refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message);
        }
    };
    if too_deep(&request.query) {
        return nesting_refusal();
    }
    let is_mutation = parse_query(&request.query)
        .map(|document| document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation))
        .unwrap_or(false);
    if is_mutation {
        let message = "mutations must be sent with POST";
        return refusal::refuse(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadRequest, message);
    }
    execute(&state, call, request).await
}

async fn execute(state: &AppState, call: Call, request: async_graphql::Request) -> Response {
    if request.query.trim().is_empty() {
        let message = "the request has no `query`";
        return refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message);
    }
    if too_deep(&request.query) {
        return nesting_refusal();
    }
    // Named as the OpenTelemetry GraphQL conventions ask, short of the operation type: that would take a second
    // parse of the document.
    let span = tracing::info_span!(
        "graphql",
        otel.name = request.operation_name.as_deref().unwrap_or("GraphQL Operation"),
        graphql.operation.name = request.operation_name,
        trace_id = call.trace().trace_id(),
        operation = request.operation_name
    );
    let request = schema::prepare(request, &state.services, call);
    let response = tracing::Instrument::instrument(state.schema.execute(request), span).await;
    bounded_response(response, state.limits.max_response_bytes)
}

/// Whether `Content-Type` is `application/json` (any parameters, such as a charset, allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

/// The body, read chunk by chunk and refused with `413` as soon as it passes `limit` bytes.
async fn read_bounded(body: Body, limit: usize) -> Result<Vec<u8>, Response> {
    let mut chunks = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| {
            let message = format!("the request body could not be read: {error}");
            refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(refusal::payload_too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn nesting_refusal() -> Response {
    let message = format!("the document is nested more than {MAX_NESTING} levels deep");
    refusal::refuse(StatusCode::BAD_REQUEST, ErrorCode::GraphqlParseFailed, message)
}

/// Whether `document` nests `{`, `[` or `(` more than [`MAX_NESTING`] deep. Linear, with no recursion: it runs
/// before the parser, which recurses. Erring on the safe side, an opening bracket counts wherever it is, while a
/// closing one counts only outside strings and comments: a closing bracket in a string cannot hide nesting.
pub(crate) fn too_deep(document: &str) -> bool {
    let mut depth = 0usize;
    let mut chars = document.chars().peekable();
    let open = |depth: &mut usize| {
        *depth += 1;
        *depth > MAX_NESTING
    };
    while let Some(c) = chars.next() {
        let skipped = match c {
            '{' | '[' | '(' => {
                if open(&mut depth) {
                    return true;
                }
                continue;
            }
            '}' | ']' | ')' => {
                depth = depth.saturating_sub(1);
                continue;
            }
            '#' => skip_comment(&mut chars),
            '"' => skip_string(&mut chars),
            _ => continue,
        };
        for _ in 0..skipped {
            if open(&mut depth) {
                return true;
            }
        }
    }
    false
}

/// Moves past a comment whose `#` was just read; returns the opening brackets in it.
fn skip_comment(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> usize {
    let mut opening = 0;
    for c in chars.by_ref() {
        match c {
            '\n' | '\r' => break,
            '{' | '[' | '(' => opening += 1,
            _ => {}
        }
    }
    opening
}

/// Moves past a string whose opening quote was just read — `"…"` with escapes, or a block string `"""…"""` —
/// and returns the opening brackets in it.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> usize {
    let mut opening = 0;
    let mut count = |c: char| {
        if matches!(c, '{' | '[' | '(') {
            opening += 1;
        }
    };
    if chars.peek() == Some(&'"') {
        chars.next();
        if chars.peek() != Some(&'"') {
            return 0; // `""`: the empty string.
        }
        chars.next();
        let mut quotes = 0;
        while let Some(c) = chars.next() {
            count(c);
            match c {
                '"' => {
                    quotes += 1;
                    if quotes == 3 {
                        break;
                    }
                }
                '\\' if chars.peek() == Some(&'"') => {
                    chars.next();
                    quotes = 0;
                }
                _ => quotes = 0,
            }
        }
        return opening;
    }
    while let Some(c) = chars.next() {
        count(c);
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '\n' | '\r' => break,
            _ => {}
        }
    }
    opening
}

/// The response as JSON, or an error in its place when it is larger than `limit` bytes.
fn bounded_response(response: async_graphql::Response, limit: usize) -> Response {
    let headers = response.http_headers.clone();
    let cache_control = response.is_ok().then(|| response.cache_control.value()).flatten();
    let body = match serde_json::to_vec(&response) {
        Ok(body) if body.len() <= limit => body,
        Ok(body) => {
            tracing::warn!(bytes = body.len(), limit, "Refused to send a response above the size limit.");
            let message = format!(
                "the response would be {} bytes, more than the {limit} allowed; ask for fewer items or fields",
                body.len()
            );
            let error = with_code(ServerError::new(message, None), ErrorCode::BadUserInput);
            serde_json::to_vec(&async_graphql::Response::from_errors(vec![error]))
                .expect("an error serializes")
        }
        Err(error) => {
            tracing::error!(error.message = %error, "A GraphQL response could not be serialized.");
            return refusal::refuse(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error");
        }
    };
    let mut answer = (StatusCode::OK, body).into_response();
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPHQL_RESPONSE));
    if let Some(value) = cache_control.and_then(|value| HeaderValue::from_str(&value).ok()) {
        answer.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    answer.headers_mut().extend(headers);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_and_strings_or_comments_cannot_hide_it() {
        let deep = format!("{{ a(x: {}1{}) }}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(too_deep(&deep));
        assert!(too_deep(&"[".repeat(100_000)));
        let hidden = format!("{{ a(x: {} \"{}\" {}) }}", "[".repeat(40), "]".repeat(40), "[".repeat(40));
        assert!(too_deep(&hidden));
        let commented = format!("{{ a(x: {} # {}\n {}) }}", "[".repeat(40), "]".repeat(40), "[".repeat(40));
        assert!(too_deep(&commented));

        assert!(!too_deep("{ a(x: \"\\\"]]]]\") { b { c } } }"));
        let block = format!("{{ a(x: \"\"\"{} \\\"\"\" {}\"\"\") }}", "]".repeat(100), ")".repeat(100));
        assert!(!too_deep(&block));
        assert!(!too_deep(include_str!("../../tests/api/introspection.graphql")));
    }
}
