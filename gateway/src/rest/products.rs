//! `/product`, `/products`: the catalog and its stock, through the catalog service.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    PRODUCTS_TAG, created,
    extract::{IdPath, JsonBody, PageParams, QueryParams},
    list,
    problem::Problem,
    resources::{NewProduct, Product, ProductUpdate, StockAdjustment},
};
use crate::services::{Call, ProductFields, Services};

pub(super) fn routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(adjust_stock))
        .routes(routes!(list_products))
}

/// A full-text search over the catalog.
#[derive(Debug, Clone, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// Only products whose name or description match these words, best match first (at most 500 characters; not
    /// with `after`: page a search with `skip`; no control characters).
    #[param(max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    query: Option<String>,
}

/// Add a product to the catalog
///
/// The name is required (at most 200 characters), the description optional (at most 5 000), the price in cents.
/// With `stock` (zero or more units), the product tracks its stock for good; without, it never does (unlimited).
#[utoipa::path(
    post,
    path = "/product",
    tag = PRODUCTS_TAG,
    request_body = NewProduct,
    security(("bearer" = [])),
    responses(
        (status = CREATED, description = "The product, added", body = Product,
            headers(("Location" = String, description = "The product's URL"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = FORBIDDEN, response = super::Forbidden),
        (status = PAYLOAD_TOO_LARGE, response = super::PayloadTooLarge),
        (status = UNSUPPORTED_MEDIA_TYPE, response = super::UnsupportedMediaType),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn create_product(
    State(services): State<Services>,
    call: Call,
    JsonBody(product): JsonBody<NewProduct>,
) -> Result<Response, Problem> {
    let fields = ProductFields {
        name: product.name,
        description: product.description,
        price_cents: product.price_cents,
    };
    let product = Product::try_from(services.create_product(fields, product.stock, &call).await?)?;
    Ok(created(format!("/api/v1/product/{}", product.id), product))
}

/// Read a product
#[utoipa::path(
    get,
    path = "/product/{id}",
    tag = PRODUCTS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The product's id")),
    security((), ("bearer" = [])),
    responses(
        (status = OK, description = "The product", body = Product),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = NOT_FOUND, response = super::NotFound),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn get_product(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
) -> Result<Json<Product>, Problem> {
    let product =
        services.product(&id.to_string(), &call).await?.ok_or_else(|| Problem::not_found("product"))?;
    Ok(Json(product.try_into()?))
}

/// Replace a product's fields
///
/// Name, description and price are all replaced. With `expected_version`, the change applies only if the product
/// is still at that version; otherwise nothing changes and the answer is 409: read it again and retry.
#[utoipa::path(
    put,
    path = "/product/{id}",
    tag = PRODUCTS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The product's id")),
    request_body = ProductUpdate,
    security(("bearer" = [])),
    responses(
        (status = OK, description = "The product, changed", body = Product),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = FORBIDDEN, response = super::Forbidden),
        (status = NOT_FOUND, response = super::NotFound),
        (status = CONFLICT, response = super::Conflict),
        (status = PAYLOAD_TOO_LARGE, response = super::PayloadTooLarge),
        (status = UNSUPPORTED_MEDIA_TYPE, response = super::UnsupportedMediaType),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn update_product(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
    JsonBody(update): JsonBody<ProductUpdate>,
) -> Result<Json<Product>, Problem> {
    let fields =
        ProductFields { name: update.name, description: update.description, price_cents: update.price_cents };
    let product = services
        .update_product(&id.to_string(), fields, update.expected_version, &call)
        .await
        .map_err(|error| super::missing_as_not_found(error, "product"))?;
    Ok(Json(product.try_into()?))
}

/// Restock or write off a product's stock
///
/// Adds `delta` units to the product's stock, or takes them away when negative; not zero. 409 when the product does
/// not track its stock, when its stock would fall below zero, or — with `expected_version` — when the product is no
/// longer at that version (orders reserving stock move it too): nothing changes then.
#[utoipa::path(
    post,
    path = "/product/{id}/stock",
    tag = PRODUCTS_TAG,
    params(("id" = uuid::Uuid, Path, description = "The product's id")),
    request_body = StockAdjustment,
    security(("bearer" = [])),
    responses(
        (status = OK, description = "The product, its stock adjusted", body = Product),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = FORBIDDEN, response = super::Forbidden),
        (status = NOT_FOUND, response = super::NotFound),
        (status = CONFLICT, response = super::Conflict),
        (status = PAYLOAD_TOO_LARGE, response = super::PayloadTooLarge),
        (status = UNSUPPORTED_MEDIA_TYPE, response = super::UnsupportedMediaType),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn adjust_stock(
    State(services): State<Services>,
    call: Call,
    IdPath(id): IdPath,
    JsonBody(adjustment): JsonBody<StockAdjustment>,
) -> Result<Json<Product>, Problem> {
    let product = services
        .adjust_stock(&id.to_string(), adjustment.delta, adjustment.expected_version, &call)
        .await
        .map_err(|error| super::missing_as_not_found(error, "product"))?;
    Ok(Json(product.try_into()?))
}

/// List or search products
///
/// All products, oldest first; or, with `query`, those matching it, best match first. A page at a time; when a
/// page of the whole list is full, `Link: <…>; rel="next"` is the next page's URL.
#[utoipa::path(
    get,
    path = "/products",
    tag = PRODUCTS_TAG,
    params(PageParams, SearchParams),
    security((), ("bearer" = [])),
    responses(
        (status = OK, description = "A page of products", body = Vec<Product>,
            headers(("Link" = String, description = "The next page, when this one is full"))),
        (status = BAD_REQUEST, response = super::BadRequest),
        (status = UNAUTHORIZED, response = super::Unauthenticated),
        (status = UNPROCESSABLE_ENTITY, response = super::InvalidInput),
        (status = TOO_MANY_REQUESTS, response = super::TooManyRequests),
        (status = SERVICE_UNAVAILABLE, response = super::Unavailable),
    )
)]
async fn list_products(
    State(services): State<Services>,
    call: Call,
    QueryParams(params): QueryParams<PageParams>,
    QueryParams(search): QueryParams<SearchParams>,
) -> Result<Response, Problem> {
    let page = params.page()?;
    let searching = search.query.is_some();
    let products: Vec<Product> = services
        .products(page.clone(), search.query, &call)
        .await?
        .into_iter()
        .map(Product::try_from)
        .collect::<Result<_, _>>()?;
    if searching {
        // A search is ordered by relevance, which an id cursor cannot continue: no `Link`.
        return Ok(Json(products).into_response());
    }
    Ok(list("/api/v1/products", &page, products, |product| product.id))
}
