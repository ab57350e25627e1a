//! The read side of the schema.

use async_graphql::{Context, Object, Result, ResultExt};

use super::{
    inputs::{PaginationInput, uuid},
    limits,
    types::{Account, Order, Product},
};
use crate::services::{Call, Services};

/// Queries.
#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// Accounts, oldest first; or the one with `id` (an empty list when there is none). A customer sees only its
    /// own (another's answers as if it did not exist), staff all; anonymous callers none (UNAUTHENTICATED). Costs
    /// `take` (20 by default) times the cost of one account.
    #[graphql(complexity = "limits::list_cost(pagination.as_ref(), id.is_some(), child_complexity)")]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        pagination: Option<PaginationInput>,
        id: Option<String>,
    ) -> Result<Vec<Account>> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        if let Some(id) = id {
            let account = services.account(&uuid("id", &id)?, call).await.extend()?;
            return account.map(Account::try_from).into_iter().collect();
        }
        let page = PaginationInput::validate(pagination)?;
        services.accounts(page, call).await.extend()?.into_iter().map(Account::try_from).collect()
    }

    /// Products: all of them (oldest first), those matching a full-text `query` over name and description (best
    /// match first), or the one with `id` (an empty list when there is none). Costs `take` (20 by default) times
    /// the cost of one product.
    #[graphql(complexity = "limits::list_cost(pagination.as_ref(), id.is_some(), child_complexity)")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        pagination: Option<PaginationInput>,
        query: Option<String>,
        id: Option<String>,
    ) -> Result<Vec<Product>> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        if let Some(id) = id {
            let product = services.product(&uuid("id", &id)?, call).await.extend()?;
            return product.map(Product::try_from).into_iter().collect();
        }
        let page = PaginationInput::validate(pagination)?;
        services.products(page, query, call).await.extend()?.into_iter().map(Product::try_from).collect()
    }

    /// The order with `id`, or null when there is none — or when it is another customer's. Needs a token.
    async fn order(&self, ctx: &Context<'_>, id: String) -> Result<Option<Order>> {
        let (services, call) = (ctx.data::<Services>()?, ctx.data::<Call>()?);
        services.order(&uuid("id", &id)?, call).await.extend()?.map(Order::try_from).transpose()
    }
}
