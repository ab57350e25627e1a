//! [`ServiceError`]: what a service call can fail with, each variant telling the caller what to do, and its one
//! translation to a gRPC status at the edge.
//!
//! What goes back to a caller is bounded whatever the caller sent: [`echo`] repeats at most
//! [`MAX_ECHO_CHARS`] of a bad input, and an invalid request reports at most [`MAX_REPORTED_VIOLATIONS`] problems
//! and counts the rest, so an error always fits in gRPC trailers (a few KiB) instead of surfacing as `INTERNAL`.

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

    /// The stand-in for the `omitted` violations beyond [`MAX_REPORTED_VIOLATIONS`]: it names no field.
    fn omitted(omitted: usize) -> Self {
        Self::new("", format!("and {omitted} more problems not listed"))
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            return f.write_str(&self.description);
        }
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// The most characters of a caller's input that an error repeats.
pub const MAX_ECHO_CHARS: usize = 64;

/// The most field violations an invalid request's error lists; the rest are counted in one last entry. Twenty
/// keep the message and its details at a few KiB, well inside the 8 KiB or so that gRPC trailers may take.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;

/// A caller's input as an error may repeat it: at most [`MAX_ECHO_CHARS`] characters, then `…`, with control
/// characters escaped, so a 1 MB id does not come back as a 1 MB error and a newline cannot forge a log line.
pub fn echo(input: &str) -> String {
    let mut echoed = String::with_capacity(input.len().min(MAX_ECHO_CHARS * 4));
    let mut chars = input.chars();
    for c in chars.by_ref().take(MAX_ECHO_CHARS) {
        if c.is_control() {
            echoed.extend(c.escape_debug());
        } else {
            echoed.push(c);
        }
    }
    if chars.next().is_some() {
        echoed.push('…');
    }
    echoed
}

/// The violations an error reports: the first [`MAX_REPORTED_VIOLATIONS`], then one entry counting the rest.
fn reported(violations: &[FieldViolation]) -> Vec<FieldViolation> {
    if violations.len() <= MAX_REPORTED_VIOLATIONS {
        return violations.to_vec();
    }
    let mut reported = violations[..MAX_REPORTED_VIOLATIONS].to_vec();
    reported.push(FieldViolation::omitted(violations.len() - MAX_REPORTED_VIOLATIONS));
    reported
}

/// What a service call can fail with.
#[derive(thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; fix it before retrying. `INVALID_ARGUMENT`, with each violation as a `BadRequest`
    /// detail (at most [`MAX_REPORTED_VIOLATIONS`], then a count of the rest).
    #[error("invalid request: {}", join(.0))]
    Invalid(Vec<FieldViolation>),
    /// Something the request names does not exist. `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// A concurrent change won; read again and retry. `ABORTED`.
    #[error("{0}")]
    Conflict(String),
    /// The entity is not in a state that allows the request (an order already final, a stock that would fall
    /// below zero); retrying as it is cannot help until the state changes. `FAILED_PRECONDITION`.
    #[error("{0}")]
    FailedPrecondition(String),
    /// What the request would create exists already, and always will: retrying cannot help. `ALREADY_EXISTS`.
    #[error("{0}")]
    AlreadyExists(String),
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
    reported(violations).iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
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
                let message = format!("invalid request: {}", join(&violations));
                let details = ErrorDetails::with_bad_request(
                    reported(&violations)
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ServiceError::NotFound(message) => Status::not_found(message),
            ServiceError::Conflict(message) => Status::aborted(message),
            ServiceError::FailedPrecondition(message) => Status::failed_precondition(message),
            ServiceError::AlreadyExists(message) => Status::already_exists(message),
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
    /// conflict the caller can retry. A database going away or out of reach ([`crate::postgres::is_unavailable`]) is
    /// unavailable. Anything else is a bug.
    fn from(error: sqlx::Error) -> Self {
        let unique_violation =
            error.as_database_error().is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation);
        if unique_violation {
            return Self::Conflict(
                "a concurrent change to the same entity won; read it again and retry".into(),
            );
        }
        if crate::postgres::is_unavailable(&error) {
            tracing::warn!(error.message = %error, "The database is unavailable.");
            return Self::Unavailable("the database is unavailable; retry later".into());
        }
        Self::Unexpected(anyhow::Error::new(error).context("A database query failed"))
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
    fn a_long_list_of_violations_is_cut_to_the_first_ones_and_a_count() {
        let violations: Vec<_> = (0..1_000)
            .map(|i| FieldViolation::new(format!("lines[{i}].quantity"), "must be at least 1"))
            .collect();

        let status = Status::from(ServiceError::Invalid(violations));

        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let reported = &details.bad_request().unwrap().field_violations;
        assert_eq!(reported.len(), MAX_REPORTED_VIOLATIONS + 1);
        assert_eq!(reported[19].field, "lines[19].quantity");
        assert_eq!(reported[20].description, "and 980 more problems not listed");
        assert!(
            status
                .message()
                .ends_with("lines[19].quantity: must be at least 1; and 980 more problems not listed")
        );
        assert!(status.message().len() < 1_000, "{}", status.message().len());
    }

    #[test]
    fn echoes_of_input_are_bounded_and_control_characters_escaped() {
        let huge = "x".repeat(1_000_000);

        assert_eq!(echo("42"), "42");
        assert_eq!(echo(&"y".repeat(MAX_ECHO_CHARS)), "y".repeat(MAX_ECHO_CHARS));
        assert_eq!(echo(&huge), format!("{}…", "x".repeat(MAX_ECHO_CHARS)));
        assert_eq!(echo(&"é".repeat(100)).chars().count(), MAX_ECHO_CHARS + 1);
        assert_eq!(echo("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn unexpected_errors_do_not_leak_their_cause() {
        let error = ServiceError::Unexpected(anyhow::anyhow!("password authentication failed for user bob"));

        let status = Status::from(error);

        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
