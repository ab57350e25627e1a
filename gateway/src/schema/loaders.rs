//! Batched look-ups, so a query over many accounts makes one call per kind of data, not one per account.

use std::collections::HashMap;

use async_graphql::{ResultExt, dataloader::Loader};
use shop_events::TraceContext;

use super::types::Order;
use crate::services::Services;

/// The most account ids one batch sends (the order service's limit).
pub const MAX_ACCOUNTS_PER_BATCH: usize = 1_000;

/// Loads the orders of every account a response needs in one `GetOrdersForAccounts` call. One per request, so
/// nothing is cached across requests.
#[derive(Debug)]
pub struct OrdersByAccount {
    services: Services,
    trace: TraceContext,
}

impl OrdersByAccount {
    pub fn new(services: Services, trace: TraceContext) -> Self {
        Self { services, trace }
    }
}

impl Loader<String> for OrdersByAccount {
    type Value = Vec<Order>;
    type Error = async_graphql::Error;

    async fn load(&self, account_ids: &[String]) -> Result<HashMap<String, Vec<Order>>, Self::Error> {
        let orders = self.services.orders_for_accounts(account_ids.to_vec(), &self.trace).await.extend()?;
        let mut by_account: HashMap<String, Vec<Order>> = HashMap::with_capacity(account_ids.len());
        for order in orders {
            by_account.entry(order.account_id.clone()).or_default().push(order.try_into()?);
        }
        Ok(by_account)
    }
}
