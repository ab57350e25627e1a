//! [`CallError`]: why a call to a service failed, in the one form every face of the gateway (GraphQL today, REST
//! and subscriptions next) reports to its clients. A `tonic::Status` becomes one here, and only here.

use shop_platform::FieldViolation;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Why a call to a service failed.
///
/// It deliberately does not implement `Display`: async-graphql turns anything displayable into an error without a
/// code, so each face must map it explicitly (GraphQL through `ErrorExtensions`), and [`message`](Self::message)
/// gives the text a client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request is not acceptable: the service's own message (written for callers) and its per-field
    /// violations.
    Invalid { message: String, fields: Vec<FieldViolation> },
    /// The caller must sign in (send a bearer token) for this.
    Unauthenticated,
    /// The caller is signed in, and not allowed this.
    Forbidden,
    /// Something the request names does not exist — or belongs to someone else, which a caller cannot tell apart.
    NotFound(String),
    /// A concurrent change won (read again and retry), or the state of what the request names does not allow it
    /// (FAILED_PRECONDITION: stock that would fall below zero, an order already final).
    Conflict(String),
    /// The service cannot be reached, or is overloaded; retry later.
    Unavailable { service: &'static str },
    /// A bug. The details go to the log, never to the client.
    Internal,
}

impl CallError {
    /// What a client may be told.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid { message, .. } | Self::NotFound(message) | Self::Conflict(message) => {
                message.clone()
            }
            Self::Unauthenticated => {
                "this requires signing in: send `Authorization: Bearer <token>`".to_owned()
            }
            Self::Forbidden => "this requires the staff role".to_owned(),
            Self::Unavailable { service } => format!("the {service} service is unavailable; retry later"),
            Self::Internal => "internal error".to_owned(),
        }
    }

    /// A failed call to `service`. Errors about the input keep the service's message; anything else gets a
    /// generic one, with the details logged.
    pub fn from_status(service: &'static str, status: Status) -> Self {
        match status.code() {
            // RESOURCE_EXHAUSTED: the services' "you asked for more than one answer may carry".
            Code::InvalidArgument | Code::ResourceExhausted => {
                let details = status.get_error_details();
                let fields = details
                    .bad_request()
                    .map(|bad_request| {
                        bad_request
                            .field_violations
                            .iter()
                            .map(|violation| FieldViolation::new(&violation.field, &violation.description))
                            .collect()
                    })
                    .unwrap_or_default();
                Self::Invalid { message: status.message().to_owned(), fields }
            }
            Code::NotFound => Self::NotFound(status.message().to_owned()),
            Code::Aborted | Code::AlreadyExists | Code::FailedPrecondition => {
                Self::Conflict(status.message().to_owned())
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(service, code = ?status.code(), error.message = status.message(), "A service is unavailable.");
                Self::Unavailable { service }
            }
            // Includes OUT_OF_RANGE, which is how tonic reports a message above its decoding limit: the services
            // bound their answers so that it cannot happen, so it is a bug, never the caller's fault.
            code => {
                tracing::error!(
                    service,
                    ?code,
                    error.message = status.message(),
                    "A service call failed unexpectedly."
                );
                Self::Internal
            }
        }
    }

    /// A service answered without what it must send (a created entity, a timestamp): a bug on its side.
    pub fn malformed(service: &'static str, what: &str) -> Self {
        tracing::error!(service, what, "A service answered without something it must send.");
        Self::Internal
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn invalid_requests_keep_the_services_message_and_field_violations() {
        let details = ErrorDetails::with_bad_request_violation("name", "must not be blank");
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid request: name: must not be blank",
            details,
        );

        let error = CallError::from_status("account", status);

        assert_eq!(
            error,
            CallError::Invalid {
                message: "invalid request: name: must not be blank".into(),
                fields: vec![FieldViolation::new("name", "must not be blank")],
            }
        );
    }

    #[test]
    fn internal_errors_keep_their_details_out_of_the_answer() {
        let error = CallError::from_status("order", Status::internal("relation \"orders\" does not exist"));

        assert_eq!(error, CallError::Internal);
        assert_eq!(error.message(), "internal error");
    }

    #[test]
    fn a_message_above_the_decoding_limit_is_internal_not_the_callers_fault() {
        let status = Status::out_of_range("Error, decoded message length too large: found 5000000 bytes");

        assert_eq!(CallError::from_status("order", status), CallError::Internal);
    }

    #[test]
    fn an_unreachable_service_is_named() {
        let error = CallError::from_status("catalog", Status::unavailable("tcp connect error"));

        assert_eq!(error.message(), "the catalog service is unavailable; retry later");
    }
}
