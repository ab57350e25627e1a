//! The write side of the schema. Every mutation is one call to the service that owns the data; that service
//! records the change and its event in one transaction.

use async_graphql::{Context, ErrorExtensions, Object, Result, ResultExt};

use super::{
    errors::bad_input,
    inputs::{AccountInput, OrderInput, ProductInput, uuid},
    types::{Account, Order, Product},
};
use crate::services::{Call, CallError, Services};

/// Mutations.
#[derive(Debug, Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Opens an account, owned by the caller's identity (one per identity; a second is CONFLICT). The name is
    /// required (at most 100 characters, trimmed). Needs a token.
    async fn create_account(&self, ctx: &Context<'_>, account: AccountInput) -> Result<Account> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        services.create_account(account.name, call).await.extend()?.try_into()
    }

    /// Adds a product to the catalog; with `stock`, one that tracks its stock. Staff only.
    async fn create_product(&self, ctx: &Context<'_>, product: ProductInput) -> Result<Product> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        let stock = product.stock;
        services.create_product(product.into_fields()?, stock, call).await.extend()?.try_into()
    }

    /// Replaces a product's name, description and price (its stock is `adjustStock`'s). With `expectedVersion`,
    /// fails with CONFLICT if the product changed since that version was read. Staff only.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: String,
        product: ProductInput,
        expected_version: Option<i64>,
    ) -> Result<Product> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        let id = uuid("id", &id)?;
        if product.stock.is_some() {
            return Err(bad_input(
                "product.stock",
                "is set when a product is created; change it with adjustStock",
            ));
        }
        services
            .update_product(&id, product.into_fields()?, expected_version, call)
            .await
            .extend()?
            .try_into()
    }

    /// Adds `delta` units to a product's stock (a restock), or takes them away when negative (a write-off); not
    /// zero. With `expectedVersion`, fails with CONFLICT if the product changed since that version was read
    /// (orders reserving stock change it too). CONFLICT as well when the product does not track its stock, or when
    /// its stock would fall below zero; nothing changes then. Staff only.
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        id: String,
        delta: i64,
        expected_version: Option<i64>,
    ) -> Result<Product> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        let id = uuid("id", &id)?;
        services.adjust_stock(&id, delta, expected_version, call).await.extend()?.try_into()
    }

    /// Cancels an order that is not final yet (`PENDING` or `AWAITING_STOCK`); stock the catalog may hold for it
    /// goes back (`stockReleasePending` says until when). CONFLICT once the order is `CONFIRMED`, `REJECTED` or
    /// `CANCELLED`. A customer may cancel only its own orders (another's is NOT_FOUND, as a missing one), staff
    /// any. Needs a token.
    async fn cancel_order(&self, ctx: &Context<'_>, id: String) -> Result<Order> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        let id = uuid("id", &id)?;
        let order = services.cancel_order(&id, call).await.extend()?;
        order.ok_or_else(|| CallError::NotFound(format!("order {id} does not exist")).extend())?.try_into()
    }

    /// Places an order. Repeated products are merged; NOT_FOUND when the account or a product does not exist. A
    /// customer may order only for its own account (another's is NOT_FOUND, as a missing one).
    ///
    /// `idempotencyKey` (1 to 255 printable ASCII characters, no spaces; a UUID serves) makes retrying safe: the same
    /// key with the same order answers the order it placed, as it stands now, whatever became of the first attempt
    /// (an UNAVAILABLE answer, a lost response); with another order it is a CONFLICT. Keys belong to the account and
    /// are kept at least 24 hours.
    async fn create_order(
        &self,
        ctx: &Context<'_>,
        order: OrderInput,
        idempotency_key: Option<String>,
    ) -> Result<Order> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        let (account_id, lines) = order.validate()?;
        services.place_order(account_id, lines, idempotency_key, call).await.extend()?.try_into()
    }
}
