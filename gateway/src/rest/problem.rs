//! [`Problem`]: every REST error, as an RFC 9457 problem-details body (`application/problem+json`).
//!
//! Each kind of problem has a `type` URI, `/api/v1/problems/<slug>`, that answers a description of it; `code`
//! carries the same value as `extensions.code` in a GraphQL error, so a client using both faces branches on one
//! set of codes. A failed service call becomes a problem here, and only here (`From<CallError>`).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shop_platform::FieldViolation;
use utoipa::ToSchema;

use crate::{schema::errors::ErrorCode, services::CallError};

/// The media type of problem-details bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the problem types are described; a problem's `type` is this followed by its slug.
pub const PROBLEM_TYPES: &str = "/api/v1/problems/";

/// The kinds of problem the REST API reports. Each has one status, one `code`, one `type` and a
/// [`description`](Self::description) of when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    BadRequest,
    Unauthenticated,
    Forbidden,
    InvalidInput,
    NotFound,
    UnknownReference,
    MethodNotAllowed,
    Conflict,
    Timeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ProblemType {
    /// Every problem type, for their descriptions.
    pub const ALL: [Self; 14] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::InvalidInput,
        Self::NotFound,
        Self::UnknownReference,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::Timeout,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::TooManyRequests,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::InvalidInput => "invalid-input",
            Self::NotFound => "not-found",
            Self::UnknownReference => "unknown-reference",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::Timeout => "timeout",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::TooManyRequests => "too-many-requests",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::InvalidInput | Self::UnknownReference => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code a GraphQL error for the same failure carries.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::BadRequest | Self::MethodNotAllowed => ErrorCode::BadRequest,
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::InvalidInput => ErrorCode::BadUserInput,
            Self::NotFound | Self::UnknownReference => ErrorCode::NotFound,
            Self::Conflict => ErrorCode::Conflict,
            Self::Timeout | Self::Unavailable => ErrorCode::Unavailable,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::TooManyRequests => ErrorCode::TooManyRequests,
            Self::Internal => ErrorCode::Internal,
        }
    }

    /// A short summary of the problem type, the same for every occurrence (RFC 9457's `title`).
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "The request cannot be read",
            Self::Unauthenticated => "Sign in first",
            Self::Forbidden => "Not allowed",
            Self::InvalidInput => "The request is not valid",
            Self::NotFound => "Not found",
            Self::UnknownReference => "The request refers to something that does not exist",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "The request conflicts with what exists",
            Self::Timeout => "The request took too long",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The request body must be JSON",
            Self::TooManyRequests => "Too many requests; slow down",
            Self::Unavailable => "Unavailable; retry later",
            Self::Internal => "Internal error",
        }
    }

    /// When the API reports this problem, and what to do about it: what the problem type's URI answers.
    pub fn description(self) -> &'static str {
        match self {
            Self::BadRequest => {
                "The request cannot be read: a body that is not JSON, a malformed id in the path, a query parameter out of range."
            }
            Self::Unauthenticated => {
                "The request needs a bearer token (`Authorization: Bearer <token>`) and has none, or its token does not verify (expired, another issuer or audience, a bad signature…); `WWW-Authenticate` says which."
            }
            Self::Forbidden => {
                "The token is valid but its holder may not do this: changing the catalog needs the staff role."
            }
            Self::InvalidInput => {
                "The body is JSON but not an acceptable request: a missing or mistyped field, a rule broken (a blank name, a negative price, a quantity of zero…). `errors` lists the fields at fault."
            }
            Self::NotFound => "The resource does not exist.",
            Self::UnknownReference => "The request refers to an account or product that does not exist.",
            Self::MethodNotAllowed => {
                "The method is not one the resource supports; `Allow` lists those it does."
            }
            Self::Conflict => {
                "The resource changed since the version the request names (read it again and retry), its state does not allow the change (stock that would fall below zero, a product that does not track its stock, an order already final), or the identity already has the account the request would open."
            }
            Self::Timeout => "The request took longer than the gateway allows.",
            Self::PayloadTooLarge => "The body is larger than the gateway accepts.",
            Self::UnsupportedMediaType => "The body is not `application/json`.",
            Self::TooManyRequests => {
                "This client (its signed-in user, or else its address) sent more requests than the gateway allows one client; retry after `Retry-After` seconds."
            }
            Self::Unavailable => {
                "A service behind the gateway, or its database, cannot answer now, or the gateway is overloaded; retry after `Retry-After` seconds."
            }
            Self::Internal => "A bug; the details are in the logs, never in the answer.",
        }
    }

    /// The problem type whose status is `status`, for answers made before a handler runs (the status is all
    /// there is to go on then). 422 is only ever made by handlers, which choose its type themselves.
    pub fn for_status(status: StatusCode) -> Self {
        Self::ALL.into_iter().find(|kind| kind.status() == status).unwrap_or(if status.is_server_error() {
            Self::Internal
        } else {
            Self::BadRequest
        })
    }

    /// The `type` URI.
    pub fn uri(self) -> String {
        format!("{PROBLEM_TYPES}{}", self.slug())
    }
}

/// A REST error: its kind and what went wrong this time. It answers as a [`ProblemDetails`] body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemType,
    /// What went wrong this time, for a person to read.
    pub detail: String,
    /// The fields at fault, when the problem is about fields.
    pub errors: Vec<Violation>,
}

/// An RFC 9457 problem-details body, as it goes on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem, example = json!({
    "type": "/api/v1/problems/invalid-input",
    "title": "The request is not valid",
    "status": 422,
    "detail": "invalid request: name: must not be blank",
    "code": "BAD_USER_INPUT",
    "errors": [{ "field": "name", "detail": "must not be blank" }]
}))]
pub struct ProblemDetails<'a> {
    /// Identifies the kind of problem: `/api/v1/problems/<slug>`, which answers a description of it.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A summary of the kind of problem, the same for every occurrence.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a person to read.
    pub detail: &'a str,
    /// The same code a GraphQL error for this failure carries in `extensions.code`.
    pub code: &'static str,
    /// The fields at fault, when the problem is about fields.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub errors: &'a [Violation],
}

/// One field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Violation {
    /// The field, as the request names it: `name`, `lines[1].quantity`, `take`…
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl From<&FieldViolation> for Violation {
    fn from(violation: &FieldViolation) -> Self {
        Self { field: violation.field.clone(), detail: violation.description.clone() }
    }
}

impl Problem {
    /// A problem of `kind`, with `detail` for the client.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), errors: Vec::new() }
    }

    /// A problem of `kind` about `fields`.
    pub fn with_fields(kind: ProblemType, detail: impl Into<String>, fields: &[FieldViolation]) -> Self {
        Self { errors: fields.iter().map(Violation::from).collect(), ..Self::new(kind, detail) }
    }

    /// 400 about one query or path parameter.
    pub fn bad_parameter(violation: FieldViolation) -> Self {
        let detail = format!("{}: {}", violation.field, violation.description);
        Self::with_fields(ProblemType::BadRequest, detail, &[violation])
    }

    /// 404: no `what` has this id.
    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemType::NotFound, format!("no {what} has this id"))
    }

    /// 500: a service answered something it must not (logged where it is found).
    pub fn internal() -> Self {
        Self::new(ProblemType::Internal, "internal error")
    }
}

/// A documented response of this kind: a problem-details body described by `description` (and, for
/// [`ProblemType::Unavailable`] and [`ProblemType::TooManyRequests`], the `Retry-After` header their answers carry).
pub fn response(kind: ProblemType, description: &str) -> utoipa::openapi::Response {
    // The schema's own example is a 422; each response shows one of its own kind.
    let example = serde_json::json!({
        "type": kind.uri(),
        "title": kind.title(),
        "status": kind.status().as_u16(),
        "detail": description,
        "code": kind.code().as_str(),
    });
    let body = utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
        .example(Some(example))
        .build();
    let mut response =
        utoipa::openapi::ResponseBuilder::new().description(description).content(PROBLEM_JSON, body);
    if matches!(kind, ProblemType::Unavailable | ProblemType::TooManyRequests) {
        let retry_after = utoipa::openapi::HeaderBuilder::new()
            .schema(Some(<u64 as utoipa::PartialSchema>::schema()))
            .description(Some("Seconds to wait before retrying"))
            .build();
        response = response.header("Retry-After", retry_after);
    }
    response.build()
}

impl From<CallError> for Problem {
    /// A failed service call. NOT_FOUND here means the request named something missing; a handler whose own
    /// resource may be missing turns that into 404 first (see the services' `Option` answers).
    fn from(error: CallError) -> Self {
        let detail = error.message();
        match error {
            CallError::Invalid { fields, .. } => {
                Self::with_fields(ProblemType::InvalidInput, detail, &fields)
            }
            CallError::Unauthenticated => Self::new(ProblemType::Unauthenticated, detail),
            CallError::Forbidden => Self::new(ProblemType::Forbidden, detail),
            CallError::NotFound(_) => Self::new(ProblemType::UnknownReference, detail),
            CallError::Conflict(_) => Self::new(ProblemType::Conflict, detail),
            CallError::Unavailable { .. } => Self::new(ProblemType::Unavailable, detail),
            CallError::Internal => Self::internal(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDetails {
            problem_type: self.kind.uri(),
            title: self.kind.title(),
            status: self.kind.status().as_u16(),
            detail: &self.detail,
            code: self.kind.code().as_str(),
            errors: &self.errors,
        };
        let mut response = (self.kind.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self.kind {
            ProblemType::Unavailable => {
                let retry_after = shop_platform::overload::RETRY_AFTER.as_secs();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            // RFC 9110: a 401 always carries a challenge (a refusal of a token brings a more precise one).
            ProblemType::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(crate::auth::CHALLENGE));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_own_slug_and_is_found_by_its_status_unless_it_shares_422() {
        let mut slugs: Vec<_> = ProblemType::ALL.iter().map(|kind| kind.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
        for kind in ProblemType::ALL {
            if kind.status() != StatusCode::UNPROCESSABLE_ENTITY {
                assert_eq!(ProblemType::for_status(kind.status()), kind);
            }
        }
    }

    #[test]
    fn service_failures_keep_their_message_and_fields() {
        let fields = vec![FieldViolation::new("name", "must not be blank")];
        let problem = Problem::from(CallError::Invalid {
            message: "invalid request: name: must not be blank".into(),
            fields,
        });

        assert_eq!(problem.kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.kind.code(), ErrorCode::BadUserInput);
        assert_eq!(
            problem.errors,
            vec![Violation { field: "name".into(), detail: "must not be blank".into() }]
        );
        assert_eq!(Problem::from(CallError::Internal).detail, "internal error");
    }

    #[test]
    fn unavailable_answers_say_when_to_retry() {
        let response = Problem::from(CallError::Unavailable { service: "order" }).into_response();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
