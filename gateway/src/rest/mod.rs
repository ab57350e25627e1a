//! The REST/JSON face: the original system's resource endpoints under `/api/v1`, over the same service calls
//! ([`crate::services`]) and the same error model as GraphQL, with an OpenAPI 3.1 document generated from the
//! handlers (`GET /api/v1/openapi.json`).
//!
//! - [`resources`]: what the endpoints exchange, shaped like the entities in the events (integer cents, snake_case).
//! - [`problem`]: every error as an RFC 9457 problem-details body.
//! - `extract`: what the handlers take from a request, refusing bad requests with a problem.
//! - `accounts`, `products`, `orders`: the handlers, each with its `#[utoipa::path]`; `utoipa_axum::routes!`
//!   registers a handler and its documentation in one call, so no route can be served undocumented.
//!
//! Conventions: `201 Created` with `Location` on creation (`202 Accepted` for an order not decided yet); lists are
//! JSON arrays, paged with `skip`/`take` (and `after`, which the `Link: rel="next"` header of a full page carries);
//! `503` with `Retry-After` when a service is unavailable.

mod accounts;
mod extract;
mod orders;
pub mod problem;
mod products;
pub mod resources;

use std::sync::LazyLock;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use self::problem::{Problem, ProblemType};
use crate::{
    http::Refused,
    services::{self, CallError, Services},
};

/// Where the REST API lives; its version is in the path.
pub(crate) const PREFIX: &str = "/api/v1";

const ACCOUNTS_TAG: &str = "accounts";
const PRODUCTS_TAG: &str = "products";
const ORDERS_TAG: &str = "orders";
const API_TAG: &str = "api";

/// Declares the API's reusable error responses: each a unit type whose only use is its documentation, a
/// problem-details body described by the doc comment (and, for `Unavailable`, a `Retry-After` header).
macro_rules! problem_responses {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {$(
        $(#[doc = $doc])*
        struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
                let description = [$($doc.trim()),*].join(" ");
                (stringify!($name), problem::response(ProblemType::$name, &description).into())
            }
        }
    )*};
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shop REST API",
        version = "1",
        description = "The shop's accounts, catalog and orders as JSON resources. Money is in integer cents, ids are \
            UUIDs, timestamps RFC 3339; resources have the shape of the entities in the events on the Kafka topics. \
            Errors are RFC 9457 problem details (`application/problem+json`) whose `code` is the one a GraphQL error \
            for the same failure carries. Browsing the catalog needs no token; everything else needs \
            `Authorization: Bearer <token>` from the shop's OpenID Connect issuer: a customer sees only its own \
            account and orders (another customer's answer 404, as missing ones do), staff may change the catalog.",
        license(name = "MIT OR Apache-2.0")
    ),
    tags(
        (name = ACCOUNTS_TAG, description = "Customer accounts"),
        (name = PRODUCTS_TAG, description = "The catalog"),
        (name = ORDERS_TAG, description = "Orders, validated and priced against the catalog"),
        (name = API_TAG, description = "This document, and the kinds of problem the API reports"),
    ),
    components(
        // Only the error responses below refer to these; the handlers' own bodies register theirs.
        schemas(problem::ProblemDetails, problem::Violation),
        responses(
            BadRequest, Unauthenticated, Forbidden, InvalidInput, NotFound, Conflict, PayloadTooLarge,
            UnsupportedMediaType, TooManyRequests, Unavailable
        )
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The `bearer` security scheme the operations name: a JWT from the shop's OpenID Connect issuer. Browsing the
/// catalog needs none; everything else does (unless the gateway runs with authentication disabled).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A token from the shop's OpenID Connect issuer (`Authorization: Bearer <token>`).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

problem_responses! {
    /// The request cannot be read: a body that is not JSON, a malformed id, a query parameter out of range.
    BadRequest,
    /// The request needs a bearer token and has none, or its token does not verify; `WWW-Authenticate` says why.
    Unauthenticated,
    /// The token is valid but does not allow this: changing the catalog needs the staff role.
    Forbidden,
    /// The body is JSON but not an acceptable request (`errors` lists the fields at fault), or it names an account
    /// or product that does not exist.
    InvalidInput,
    /// Nothing has this id.
    NotFound,
    /// The resource changed since the version the request names (read it again and retry), its state does not allow
    /// the change (stock that would fall below zero, a product that does not track its stock, an order already
    /// final), or the identity already has the account the request would open.
    Conflict,
    /// The body is larger than the gateway accepts (1 MiB by default).
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The client sent more requests than the gateway allows it (per signed-in subject, or per address): retry after
    /// `Retry-After` seconds.
    TooManyRequests,
    /// A service or its database cannot answer now, or the gateway is overloaded: retry after `Retry-After` seconds.
    Unavailable,
}

/// Every route of the API with its documentation.
fn api() -> OpenApiRouter<Services> {
    let resources = OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(products::routes())
        .merge(orders::routes())
        .routes(routes!(openapi_document))
        .routes(routes!(problem_type));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(PREFIX, resources)
}

/// The OpenAPI document of every route, generated from the handlers and the types they exchange.
pub fn document() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The document as served: generated on first request, then kept.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_json().expect("the OpenAPI document serializes to JSON"));

/// The REST API's routes. Bodies are read whole by the JSON extractor, which refuses one past `max_body_bytes`
/// with 413 as it reads (a chunked body declares no length for the gateway's earlier check).
pub(crate) fn routes(services: Services, max_body_bytes: usize) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(services).layer(DefaultBodyLimit::max(max_body_bytes))
}

/// The OpenAPI document
///
/// This document: OpenAPI 3.1, generated from the handlers.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = API_TAG,
    responses((status = OK, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// A kind of problem, as its `type` URI describes it.
#[derive(Debug, Serialize, ToSchema)]
struct ProblemTypeDescription {
    /// The URI a problem of this kind carries in `type`.
    #[serde(rename = "type")]
    problem_type: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    description: &'static str,
}

/// Describe a kind of problem
///
/// What a problem's `type` URI answers: when the API reports it, and what to do about it.
#[utoipa::path(
    get,
    path = "/problems/{slug}",
    tag = API_TAG,
    params(("slug" = String, Path, description = "The last segment of a problem's `type`")),
    responses(
        (status = OK, description = "The kind of problem", body = ProblemTypeDescription),
        (status = NOT_FOUND, response = NotFound),
    )
)]
async fn problem_type(
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> Result<Json<ProblemTypeDescription>, Problem> {
    let kind = ProblemType::ALL
        .into_iter()
        .find(|kind| kind.slug() == slug)
        .ok_or_else(|| Problem::new(ProblemType::NotFound, "no problem type has this name"))?;
    Ok(Json(ProblemTypeDescription {
        problem_type: kind.uri(),
        title: kind.title(),
        status: kind.status().as_u16(),
        code: kind.code().as_str(),
        description: kind.description(),
    }))
}

/// `body` with `status` and `Location: location`.
fn located(status: StatusCode, location: String, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    match HeaderValue::try_from(location) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => tracing::error!("A resource's URL is not a valid header value."),
    }
    response
}

/// `201 Created` with `body` at `location`.
fn created(location: String, body: impl Serialize) -> Response {
    located(StatusCode::CREATED, location, body)
}

/// A page of a list at `path`; when the page is full, `Link` gives the next one, after the last item.
fn list<T: Serialize>(
    path: &str,
    page: &services::Page,
    items: Vec<T>,
    id: impl Fn(&T) -> uuid::Uuid,
) -> Response {
    let next = items
        .last()
        .filter(|_| items.len() == page.take as usize)
        .map(|last| format!("<{path}?take={}&after={}>; rel=\"next\"", page.take, id(last)));
    let mut response = Json(items).into_response();
    if let Some(next) = next.and_then(|next| HeaderValue::try_from(next).ok()) {
        response.headers_mut().insert(header::LINK, next);
    }
    response
}

/// A failed call about the resource the path names: NOT_FOUND is that resource missing (404), not a reference in
/// the body (422).
fn missing_as_not_found(error: CallError, what: &str) -> Problem {
    match error {
        CallError::NotFound(_) => Problem::not_found(what),
        error => Problem::from(error),
    }
}

/// Gives every error answer under `/api/` a problem-details body, including those made before a REST handler
/// runs: the gateway's refusals (an oversized body, overload), axum's empty 404 and 405 (whose `Allow` header is
/// kept) and the request timeout's 408. Answers already in a body of their own pass unchanged.
pub(crate) async fn problem_bodies(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let detail = match response.extensions().get::<Refused>() {
        Some(refused) => refused.message.clone(),
        None if !response.headers().contains_key(header::CONTENT_TYPE) => {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(ProblemType::for_status(status), detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    // The refusal's own headers stay (its `WWW-Authenticate` challenge says more than the problem's default).
    for (name, value) in problem.headers() {
        if name == header::CONTENT_TYPE || !parts.headers.contains_key(name) {
            parts.headers.insert(name, value.clone());
        }
    }
    Response::from_parts(parts, problem.into_body())
}
