//! The write side of the schema. Every mutation is one call to the service that owns the data; that service
//! records the change and its event in one transaction.

use async_graphql::{Context, ID, Object, Result};
use shop_events::TraceContext;
use shop_proto::{
    account::v1::PostAccountRequest,
    catalog::v1::{PostProductRequest, UpdateProductRequest},
    order::v1::{LineItem, PostOrderRequest},
};

use super::{
    errors::ErrorCode,
    inputs::{AccountInput, OrderInput, ProductInput, uuid},
    types::{Account, Order, Product},
};
use crate::clients::{Services, graphql_error, request};

/// Mutations.
#[derive(Debug, Default)]
pub struct Mutation;

fn missing(what: &str) -> async_graphql::Error {
    tracing::error!(what, "A service answered without the created entity.");
    ErrorCode::Internal.error("internal error")
}

#[Object]
impl Mutation {
    /// Opens an account. The name is required (at most 100 characters, trimmed).
    async fn create_account(&self, ctx: &Context<'_>, account: AccountInput) -> Result<Account> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        let message = PostAccountRequest { name: account.name };
        let response = services
            .accounts
            .clone()
            .post_account(request(message, trace))
            .await
            .map_err(|status| graphql_error("account", status))?;
        response.into_inner().account.ok_or_else(|| missing("account"))?.try_into()
    }

    /// Adds a product to the catalog.
    async fn create_product(&self, ctx: &Context<'_>, product: ProductInput) -> Result<Product> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        let message = PostProductRequest {
            price_cents: product.price_cents()?,
            name: product.name,
            description: product.description,
        };
        let response = services
            .catalog
            .clone()
            .post_product(request(message, trace))
            .await
            .map_err(|status| graphql_error("catalog", status))?;
        response.into_inner().product.ok_or_else(|| missing("product"))?.try_into()
    }

    /// Replaces a product's name, description and price. With `expectedVersion`, fails with CONFLICT if the
    /// product changed since that version was read.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        product: ProductInput,
        expected_version: Option<i64>,
    ) -> Result<Product> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        let message = UpdateProductRequest {
            id: uuid("id", &id)?,
            price_cents: product.price_cents()?,
            name: product.name,
            description: product.description,
            expected_version,
        };
        let response = services
            .catalog
            .clone()
            .update_product(request(message, trace))
            .await
            .map_err(|status| graphql_error("catalog", status))?;
        response.into_inner().product.ok_or_else(|| missing("product"))?.try_into()
    }

    /// Places an order. Repeated products are merged; NOT_FOUND when the account or a product does not exist.
    async fn create_order(&self, ctx: &Context<'_>, order: OrderInput) -> Result<Order> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        let (account_id, lines) = order.validate()?;
        let message = PostOrderRequest {
            account_id,
            lines: lines
                .into_iter()
                .map(|(product_id, quantity)| LineItem { product_id, quantity })
                .collect(),
        };
        let response = services
            .orders
            .clone()
            .post_order(request(message, trace))
            .await
            .map_err(|status| graphql_error("order", status))?;
        response.into_inner().order.ok_or_else(|| missing("order"))?.try_into()
    }
}
