//! Machine-readable error codes: every GraphQL error the gateway returns carries one in `extensions.code`.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
    },
    parser::types::ExecutableDocument,
};

use crate::services::CallError;

/// The value of `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The HTTP request is not a GraphQL request: a body that is not JSON or has no `query`, an unreadable query
    /// string, a mutation over GET (the name and meaning Apollo Server gives it).
    BadRequest,
    /// The document is not valid GraphQL.
    GraphqlParseFailed,
    /// The document does not match the schema (unknown fields, missing required arguments or input fields…).
    GraphqlValidationFailed,
    /// An argument's value is not acceptable (malformed id, negative price, page too large…); `extensions.fields`
    /// lists the problems when there are several.
    BadUserInput,
    /// The request needs a bearer token and has none, or its token does not verify (HTTP 401 with
    /// `WWW-Authenticate` when the whole request is refused).
    Unauthenticated,
    /// The caller's token is valid but does not allow this (a customer changing the catalog).
    Forbidden,
    /// Something the request names does not exist.
    NotFound,
    /// A concurrent change won (read again and retry), or the state of what the request names does not allow it
    /// (stock that would fall below zero, an order already final).
    Conflict,
    /// A service behind the gateway cannot be reached, or the gateway is overloaded; retry later.
    Unavailable,
    /// The request body is larger than the gateway accepts (HTTP 413).
    PayloadTooLarge,
    /// The request body is not `application/json` (HTTP 415).
    UnsupportedMediaType,
    /// This client sent more requests than its rate limit allows (HTTP 429); retry after `Retry-After` seconds.
    TooManyRequests,
    /// A bug; the details are in the gateway's or the service's log, never in the response.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::Unavailable => "UNAVAILABLE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::Internal => "INTERNAL",
        }
    }

    /// An error with this code.
    pub fn error(self, message: impl Into<String>) -> async_graphql::Error {
        async_graphql::Error::new(message).extend_with(|_, e| e.set("code", self.as_str()))
    }
}

impl ErrorExtensions for CallError {
    /// A failed service call as GraphQL clients see it: its code in `extensions.code`, and for invalid input the
    /// service's per-field violations in `extensions.fields`.
    fn extend(&self) -> async_graphql::Error {
        let message = self.message();
        match self {
            CallError::Invalid { fields, .. } => {
                ErrorCode::BadUserInput.error(message).extend_with(|_, e| {
                    if !fields.is_empty() {
                        let fields: Vec<async_graphql::Value> = fields
                            .iter()
                            .map(|violation| {
                                async_graphql::Value::from_json(serde_json::json!({
                                    "field": violation.field,
                                    "description": violation.description,
                                }))
                                .unwrap_or_default()
                            })
                            .collect();
                        e.set("fields", fields);
                    }
                })
            }
            CallError::Unauthenticated => ErrorCode::Unauthenticated.error(message),
            CallError::Forbidden => ErrorCode::Forbidden.error(message),
            CallError::NotFound(_) => ErrorCode::NotFound.error(message),
            CallError::Conflict(_) => ErrorCode::Conflict.error(message),
            CallError::Unavailable { .. } => ErrorCode::Unavailable.error(message),
            CallError::Internal => ErrorCode::Internal.error(message),
        }
    }
}

/// A bad value in argument `field` (a GraphQL path such as `order.products[1].quantity`).
pub fn bad_input(field: &str, description: &str) -> async_graphql::Error {
    ErrorCode::BadUserInput.error(format!("{field}: {description}"))
}

/// `error` with `code` in `extensions.code`, unless it already has one.
pub(crate) fn with_code(mut error: ServerError, code: ErrorCode) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code.as_str());
    }
    error
}

/// Gives a code to the errors async-graphql raises itself: parse and validation failures, and argument values it
/// could not coerce (those reach the response without passing through our resolvers).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors =
            response.errors.into_iter().map(|e| with_code(e, ErrorCode::BadUserInput)).collect();
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, ErrorCode::GraphqlParseFailed))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors.into_iter().map(|e| with_code(e, ErrorCode::GraphqlValidationFailed)).collect()
        })
    }
}
