//! `/order`, `/orders`: placing, reading and cancelling orders, through the order service.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ORDERS_TAG,
    extract::{IdPath, JsonBody, PageParams, QueryParams},
    list, located,
    problem::Problem,
    resources::{NewOrder, Order},
};
use crate::services::{Call, Services};

/// The header of the IETF draft (draft-ietf-httpapi-idempotency-key-header), as Stripe and others use it.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub(super) fn routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(list_orders))
}

/// Place an order
///
/// 1 to 100 lines of quantity 1 to 10 000; repeated products are merged. The answer is the order as it stands:
/// `201` once it is decided (`confirmed` and priced, or `rejected` with its reason), `202` while it is `pending` or
/// `awaiting_stock` (validation and the stock reservation go on asynchronously: read it at its `Location`, or follow
/// `shop.orders.v1`). The same rule as
/// GraphQL's `createOrder`, which answers the same order. When the account or a product does not exist and the
/// shop can tell at once, the answer is 422 and no order is placed.
///
/// Retrying safely: send an `Idempotency-Key` (1 to 255 printable ASCII characters, no spaces; a UUID serves). The
/// same key with the same order answers the order it placed, as it stands now, whatever became of the first
/// attempt; with another order it is `409`. Keys belong to the account and are kept at least 24 hours.
#[utoipa::path(
    post,
    path = "/order",
    tag = ORDERS_TAG,
    request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "A key for this placement, so that a retry \
        cannot place the order twice (1 to 255 printable ASCII characters, no spaces)")),
    security(("bearer" = [])),
    responses(
        (status = CREATED, description = "The order, decided", body = Order,
            headers(("Location" = String, description = "The order's URL"))),
        (status = ACCEPTED, description = "The order, placed and not decided yet", body = Order,
            headers(("Location" = String, description = "The order's URL"))),
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
async fn place_order(
    State(services): State<Services>,
    call: Call,
    headers: HeaderMap,
    JsonBody(order): JsonBody<NewOrder>,
) -> Result<Response, Problem> {
    // A key that is not text reaches the order service as such, which refuses it with the field's rule.
    let key = headers.get(IDEMPOTENCY_KEY).map(|key| String::from_utf8_lossy(key.as_bytes()).into_owned());
    let lines = order.lines.into_iter().map(|line| (line.product_id.to_string(), line.quantity)).collect();
    let order =
        Order::try_from(services.place_order(order.account_id.to_string(), lines, key, &call).await?)?;
    let status = if order.status.is_final() { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok(located(status, format!("/api/v1/order/{}", order.id), order))
}

/// Read an order
#[utoipa::path(
    get,
    path = "/order/{id}",
    tag = ORDERS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = OK, description = "The order", body = Order),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = NOT_FOUND, response = super::NotFound),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn get_order(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
) -> Result<Json<Order>, Problem> {
    let order = services.order(&id.to_string(), &call).await?.ok_or_else(|| Problem::not_found("order"))?;
    Ok(Json(order.try_into()?))
}

/// Cancel an order
///
/// Cancels an order that is not final yet (`pending` or `awaiting_stock`) and answers it `cancelled`; stock the
/// catalog may hold for it goes back (`stock_release_pending` says until when). 409 once the order is `confirmed`,
/// `rejected` or `cancelled`. A customer may cancel only its own orders: another's answers 404, as a missing one.
#[utoipa::path(
    post,
    path = "/order/{id}/cancel",
    tag = ORDERS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = OK, description = "The order, cancelled", body = Order),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = NOT_FOUND, response = super::NotFound),
        (status = CONFLICT, response = super::Conflict),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn cancel_order(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
) -> Result<Json<Order>, Problem> {
    let order =
        services.cancel_order(&id.to_string(), &call).await?.ok_or_else(|| Problem::not_found("order"))?;
    Ok(Json(order.try_into()?))
}

/// List an account's orders
///
/// Newest first, a page at a time; 404 when the account does not exist. When the page is full,
/// `Link: <…>; rel="next"` is the next page's URL.
#[utoipa::path(
    get,
    path = "/orders/{account_id}",
    tag = ORDERS_TAG,
    params(("account_id" = uuid::Uuid, Path, description = "The account's id"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = OK, description = "A page of the account's orders", body = Vec<Order>,
            headers(("Link" = String, description = "The next page, when this one is full"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = NOT_FOUND, response = super::NotFound),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn list_orders(
    State(services): State<Services>,
    call: Call,
    IdPath(account_id): IdPath,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Response, Problem> {
    let page = params.page()?;
    let account_id = account_id.to_string();
    // Both at once: whether the account exists (a list of nothing is not how a missing account looks) and its page.
    let (account, orders) = tokio::try_join!(
        services.account(&account_id, &call),
        services.orders_for_accounts(vec![account_id.clone()], page.clone(), &call),
    )?;
    if account.is_none() {
        return Err(Problem::not_found("account"));
    }
    let orders: Vec<Order> = orders.into_iter().map(Order::try_from).collect::<Result<_, _>>()?;
    Ok(list(&format!("/api/v1/orders/{account_id}"), &page, orders, |order| order.id))
}
