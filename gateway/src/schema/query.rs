//! The read side of the schema.

use async_graphql::{Context, ID, Object, Result};
use shop_events::TraceContext;
use shop_proto::{
    account::v1::{GetAccountRequest, GetAccountsRequest},
    catalog::v1::{GetProductRequest, GetProductsRequest},
    order::v1::GetOrderRequest,
};
use tonic::Code;

use super::{
    inputs::{PaginationInput, uuid},
    types::{Account, Order, Product},
};
use crate::clients::{Services, graphql_error, request};

/// Queries.
#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// Accounts, oldest first; or the one with `id` (an empty list when there is none).
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        pagination: Option<PaginationInput>,
        id: Option<ID>,
    ) -> Result<Vec<Account>> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        if let Some(id) = id {
            let message = GetAccountRequest { id: uuid("id", &id)? };
            return match services.accounts.clone().get_account(request(message, trace)).await {
                Ok(response) => response.into_inner().account.map(Account::try_from).into_iter().collect(),
                Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
                Err(status) => Err(graphql_error("account", status)),
            };
        }
        let (skip, take) = PaginationInput::validate(pagination)?;
        let message = GetAccountsRequest { skip, take };
        let response = services
            .accounts
            .clone()
            .get_accounts(request(message, trace))
            .await
            .map_err(|status| graphql_error("account", status))?;
        response.into_inner().accounts.into_iter().map(Account::try_from).collect()
    }

    /// Products: all of them (oldest first), those matching a full-text `query` over name and description (best
    /// match first), or the one with `id` (an empty list when there is none).
    async fn products(
        &self,
        ctx: &Context<'_>,
        pagination: Option<PaginationInput>,
        query: Option<String>,
        id: Option<ID>,
    ) -> Result<Vec<Product>> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        if let Some(id) = id {
            let message = GetProductRequest { id: uuid("id", &id)? };
            return match services.catalog.clone().get_product(request(message, trace)).await {
                Ok(response) => response.into_inner().product.map(Product::try_from).into_iter().collect(),
                Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
                Err(status) => Err(graphql_error("catalog", status)),
            };
        }
        let (skip, take) = PaginationInput::validate(pagination)?;
        let message = GetProductsRequest { skip, take, query: query.unwrap_or_default(), ids: Vec::new() };
        let response = services
            .catalog
            .clone()
            .get_products(request(message, trace))
            .await
            .map_err(|status| graphql_error("catalog", status))?;
        response.into_inner().products.into_iter().map(Product::try_from).collect()
    }

    /// The order with `id`, or null when there is none.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let (services, trace) = (ctx.data::<Services>()?, ctx.data::<TraceContext>()?);
        let message = GetOrderRequest { id: uuid("id", &id)? };
        match services.orders.clone().get_order(request(message, trace)).await {
            Ok(response) => response.into_inner().order.map(Order::try_from).transpose(),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(graphql_error("order", status)),
        }
    }
}
