//! `/account`, `/accounts`: opening and reading customer accounts, through the account service.

use axum::{extract::State, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ACCOUNTS_TAG, created,
    extract::{IdPath, JsonBody, PageParams, QueryParams, Trace},
    list,
    problem::Problem,
    resources::{Account, NewAccount},
};
use crate::services::Services;

pub(super) fn routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(create_account))
        .routes(routes!(get_account))
        .routes(routes!(list_accounts))
}

/// Open an account
///
/// The name is required: at most 100 characters, without control characters, trimmed.
#[utoipa::path(
    post,
    path = "/account",
    tag = ACCOUNTS_TAG,
    request_body = NewAccount,
    responses(
        (status = CREATED, description = "The account, opened", body = Account,
            headers(("Location" = String, description = "The account's URL"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = PAYLOAD_TOO_LARGE, response = super::PayloadTooLarge),
        (status = UNSUPPORTED_MEDIA_TYPE, response = super::UnsupportedMediaType),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn create_account(
    State(services): State<Services>,
    Trace(trace): Trace,
    JsonBody(account): JsonBody<NewAccount>,
) -> Result<Response, Problem> {
    let account = Account::try_from(services.create_account(account.name, &trace).await?)?;
    Ok(created(format!("/api/v1/account/{}", account.id), account))
}

/// Read an account
#[utoipa::path(
    get,
    path = "/account/{id}",
    tag = ACCOUNTS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    responses(
        (status = OK, description = "The account", body = Account),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = NOT_FOUND, response = super::NotFound),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn get_account(
    State(services): State<Services>,
    Trace(trace): Trace,
    IdPath(id): IdPath,
) -> Result<axum::Json<Account>, Problem> {
    let account =
        services.account(&id.to_string(), &trace).await?.ok_or_else(|| Problem::not_found("account"))?;
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
    responses(
        (status = OK, description = "A page of accounts", body = Vec<Account>,
            headers(("Link" = String, description = "The next page, when this one is full"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn list_accounts(
    State(services): State<Services>,
    Trace(trace): Trace,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Response, Problem> {
    let page = params.page()?;
    let accounts: Vec<Account> = services
        .accounts(page.clone(), &trace)
        .await?
        .into_iter()
        .map(Account::try_from)
        .collect::<Result<_, _>>()?;
    Ok(list("/api/v1/accounts", &page, accounts, |account| account.id))
}
