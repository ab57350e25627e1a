//! `/account`, `/accounts`: opening and reading customer accounts, through the account service.

use axum::{extract::State, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ACCOUNTS_TAG, created,
    extract::{IdPath, JsonBody, PageParams, QueryParams},
    list,
    problem::Problem,
    resources::{Account, NewAccount},
};
use crate::services::{Call, Services};

pub(super) fn routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(create_account))
        .routes(routes!(get_account))
        .routes(routes!(list_accounts))
}

/// Open an account
///
/// The account belongs to the caller's identity, which may open one (a second is a 409). The name is required: at
/// most 100 characters, without control characters, trimmed.
#[utoipa::path(
    post,
    path = "/account",
    tag = ACCOUNTS_TAG,
    request_body = NewAccount,
    security(("bearer" = [])),
    responses(
        (status = CREATED, description = "The account, opened", body = Account,
            headers(("Location" = String, description = "The account's URL"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = PAYLOAD_TOO_LARGE, response = super::PayloadTooLarge),
        (status = UNSUPPORTED_MEDIA_TYPE, response = super::UnsupportedMediaType),
        (status = CONFLICT, response = super::Conflict),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn create_account(
    State(services): State<Services>,
    call: Call,
    JsonBody(account): JsonBody<NewAccount>,
) -> Result<Response, Problem> {
    let account = Account::try_from(services.create_account(account.name, &call).await?)?;
    Ok(created(format!("/api/v1/account/{}", account.id), account))
}

/// Read an account
#[utoipa::path(
    get,
    path = "/account/{id}",
    tag = ACCOUNTS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    security(("bearer" = [])),
    responses(
        (status = OK, description = "The account", body = Account),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = NOT_FOUND, response = super::NotFound),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn get_account(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
) -> Result<axum::Json<Account>, Problem> {
    let account =
        services.account(&id.to_string(), &call).await?.ok_or_else(|| Problem::not_found("account"))?;
    Ok(axum::Json(account.try_into()?))
}

/// List accounts
///
/// Oldest first, a page at a time. When the page is full, `Link: <…>; rel="next"` is the next page's URL.
#[utoipa::path(
    get,
    path = "/accounts",
    tag = ACCOUNTS_TAG,
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = OK, description = "A page of accounts", body = Vec<Account>,
            headers(("Link" = String, description = "The next page, when this one is full"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn list_accounts(
    State(services): State<Services>,
    call: Call,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Response, Problem> {
    let page = params.page()?;
    let accounts: Vec<Account> = services
        .accounts(page.clone(), &call)
        .await?
        .into_iter()
        .map(Account::try_from)
        .collect::<Result<_, _>>()?;
    Ok(list("/api/v1/accounts", &page, accounts, |account| account.id))
}
