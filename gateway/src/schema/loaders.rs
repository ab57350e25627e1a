//! Batched look-ups, so a query over many accounts makes one call per kind of data, not one per account.

use std::collections::HashMap;

use async_graphql::{ResultExt, dataloader::Loader};

use super::types::Order;
use crate::services::{Call, Page, Services};

/// The most account ids one batch sends (the order service's limit).
pub const MAX_ACCOUNTS_PER_BATCH: usize = 1_000;

/// One account's page of orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountOrders {
    pub account_id: String,
    pub page: Page,
}

/// Loads the orders of every account a response needs in one `GetOrdersForAccounts` call per distinct page (a
/// query usually asks one page of every account). One per request, so nothing is cached across requests.
#[derive(Debug)]
pub struct OrdersByAccount {
    services: Services,
    call: Call,
}

impl OrdersByAccount {
    pub fn new(services: Services, call: Call) -> Self {
        Self { services, call }
    }
}

impl Loader<AccountOrders> for OrdersByAccount {
    type Value = Vec<Order>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AccountOrders]) -> Result<HashMap<AccountOrders, Vec<Order>>, Self::Error> {
        let mut pages: HashMap<Page, Vec<String>> = HashMap::new();
        for key in keys {
            pages.entry(key.page.clone()).or_default().push(key.account_id.clone());
        }
        let mut loaded: HashMap<AccountOrders, Vec<Order>> = HashMap::with_capacity(keys.len());
        for (page, account_ids) in pages {
            let orders =
                self.services.orders_for_accounts(account_ids, page.clone(), &self.call).await.extend()?;
            for order in orders {
                let key = AccountOrders { account_id: order.account_id.clone(), page: page.clone() };
                loaded.entry(key).or_default().push(order.try_into()?);
            }
        }
        Ok(loaded)
    }
}
