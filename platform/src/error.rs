//! [`ServiceError`]: what a service call can fail with, each variant telling the caller what to do, and its one
//! translation to a gRPC status at the edge.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, as named in the `.proto` contract (`lines[2].quantity`).
    pub field: String,
    /// What is wrong with it, phrased for the person who sent it.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// What a service call can fail with.
#[derive(thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; fix it before retrying. `INVALID_ARGUMENT`, with every violation as a
    /// `BadRequest` detail.
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    /// Something the request names does not exist. `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// A concurrent change won; read again and retry. `ABORTED`.
    #[error("{0}")]
    Conflict(String),
    /// A dependency (the database, another service) cannot be reached; retry later. `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. `INTERNAL` with a generic message; the cause chain goes to the log only.
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ServiceError {
    /// A request with a single invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<FieldViolation> for ServiceError {
    fn from(violation: FieldViolation) -> Self {
        Self::Invalid(vec![violation])
    }
}

impl From<Vec<FieldViolation>> for ServiceError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::Invalid(violations)
    }
}

fn join(violations: &[FieldViolation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl fmt::Debug for ServiceError {
    // Show the whole cause chain, so a log line says why, not only what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            writeln!(f, "Caused by:\n\t{cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(violations) => {
                let message = ServiceError::Invalid(violations.clone()).to_string();
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ServiceError::NotFound(message) => Status::not_found(message),
            ServiceError::Conflict(message) => Status::aborted(message),
            ServiceError::Unavailable(message) => {
                tracing::warn!(error.message = %message, "A dependency is unavailable.");
                Status::unavailable(message)
            }
            ServiceError::Unexpected(cause) => {
                tracing::error!(error.cause_chain = ?cause, error.message = %cause, "Request failed unexpectedly.");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for ServiceError {
    /// A unique violation means a concurrent writer took the same key (usually the next aggregate version): a
    /// conflict the caller can retry. A database that cannot be reached is unavailable. Anything else is a bug.
    fn from(error: sqlx::Error) -> Self {
        let unique_violation =
            error.as_database_error().is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation);
        if unique_violation {
            return Self::Conflict(
                "a concurrent change to the same entity won; read it again and retry".into(),
            );
        }
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error.message = %error, "The database is unavailable.");
                Self::Unavailable("the database is unavailable; retry later".into())
            }
            other => Self::Unexpected(anyhow::Error::new(other).context("A database query failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_requests_carry_every_field_violation() {
        let error = ServiceError::Invalid(vec![
            FieldViolation::new("name", "must not be blank"),
            FieldViolation::new("price_cents", "must be zero or more"),
        ]);

        let status = Status::from(error);

        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid request: name: must not be blank; price_cents: must be zero or more"
        );
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[1].field, "price_cents");
    }

    #[test]
    fn unexpected_errors_do_not_leak_their_cause() {
        let error = ServiceError::Unexpected(anyhow::anyhow!("password authentication failed for user bob"));

        let status = Status::from(error);

        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
