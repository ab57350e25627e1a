//! What the handlers take from a request, each refusing a bad request with a [`Problem`] rather than axum's plain
//! text: the JSON body, the query string, an id in the path, and a page of a list (the caller and its trace are a `services::Call`, extracted by `auth`).

use std::collections::HashMap;

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts, Path, Query, Request,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};
use serde::{Deserialize, de::DeserializeOwned};
use shop_platform::{FieldViolation, ids::parse_id, pagination};
use utoipa::IntoParams;
use uuid::Uuid;

use super::problem::{Problem, ProblemType};
use crate::services;

/// A JSON request body (`Content-Type: application/json`), at most the gateway's body limit.
#[derive(Debug)]
pub(super) struct JsonBody<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let Json(body) = Json::<T>::from_request(request, state).await.map_err(refused_body)?;
        Ok(Self(body))
    }
}

/// axum's refusal of a body, as a problem: 415 without a JSON content type, 413 past the body limit, 400 for text
/// that is not JSON, 422 for JSON that does not fit the request's schema (serde's message names the field).
fn refused_body(rejection: JsonRejection) -> Problem {
    let kind = match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemType::UnsupportedMediaType,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemType::PayloadTooLarge,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemType::InvalidInput,
        _ => ProblemType::BadRequest,
    };
    let detail = match kind {
        ProblemType::UnsupportedMediaType => "send the body as `Content-Type: application/json`".to_owned(),
        _ => rejection.body_text(),
    };
    Problem::new(kind, detail)
}

/// The query string's parameters; 400 when one does not parse.
#[derive(Debug)]
pub(super) struct QueryParams<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Query(params) =
            Query::<T>::from_request_parts(parts, state).await.map_err(|rejection: QueryRejection| {
                Problem::new(ProblemType::BadRequest, rejection.body_text())
            })?;
        Ok(Self(params))
    }
}

/// The one id in the path (`/account/{id}`, `/orders/{account_id}`…); 400 naming the parameter when it is not a
/// UUID.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdPath(pub(super) Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Problem::new(ProblemType::BadRequest, rejection.body_text()))?;
        let (name, value) = params.iter().next().ok_or_else(|| {
            tracing::error!("A REST route that takes an id has no path parameter.");
            Problem::internal()
        })?;
        parse_id(name, value).map(Self).map_err(Problem::bad_parameter)
    }
}

/// Which slice of a list to return: the same bounds as GraphQL's `PaginationInput`. `skip` reaches 9 900 items
/// deep; `after` (the last id of the previous page, which the `Link: rel="next"` header carries) reaches any depth
/// at the same cost for every page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageParams {
    /// How many items to skip (default 0).
    #[param(minimum = 0, maximum = 9900)]
    pub(super) skip: Option<u64>,
    /// How many items to return (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub(super) take: Option<u32>,
    /// Only items after this one, in the list's order: the id of the last item of the previous page.
    pub(super) after: Option<Uuid>,
}

impl PageParams {
    /// The page to ask the service for; 400 naming every parameter out of bounds.
    pub(super) fn page(&self) -> Result<services::Page, Problem> {
        let skip = self.skip.unwrap_or(0);
        let take = self.take.unwrap_or(pagination::Page::DEFAULT_TAKE);
        let mut violations = Vec::new();
        if skip > pagination::Page::MAX_SKIP {
            violations
                .push(FieldViolation::new("skip", format!("must be at most {}", pagination::Page::MAX_SKIP)));
        }
        if !(1..=pagination::Page::MAX_TAKE).contains(&take) {
            let description = format!("must be between 1 and {}", pagination::Page::MAX_TAKE);
            violations.push(FieldViolation::new("take", description));
        }
        if !violations.is_empty() {
            let detail = violations
                .iter()
                .map(|violation| format!("{}: {}", violation.field, violation.description))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Problem::with_fields(ProblemType::BadRequest, detail, &violations));
        }
        Ok(services::Page { skip, take, after: self.after.map(|after| after.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(skip: Option<u64>, take: Option<u32>) -> Result<services::Page, Problem> {
        PageParams { skip, take, after: None }.page()
    }

    #[test]
    fn pages_have_the_bounds_graphql_has() {
        assert_eq!(page(None, None).unwrap(), services::Page { skip: 0, take: 20, after: None });
        assert_eq!(
            page(Some(9_900), Some(100)).unwrap(),
            services::Page { skip: 9_900, take: 100, after: None }
        );
        let problem = page(Some(9_901), Some(0)).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadRequest);
        let fields: Vec<_> = problem.errors.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["skip", "take"]);
        assert!(page(None, Some(101)).is_err());
    }
}
