//! Batched look-ups, so a query over many accounts makes one call per kind of data, not one per account.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use shop_events::TraceContext;
use shop_proto::order::v1::{GetOrdersForAccountsRequest, order_service_client::OrderServiceClient};
use tonic::transport::Channel;

use super::types::Order;
use crate::clients::{graphql_error, request};

/// The most account ids one batch sends (the order service's limit).
pub const MAX_ACCOUNTS_PER_BATCH: usize = 1_000;

/// Loads the orders of every account a response needs in one `GetOrdersForAccounts` call. One per request, so
/// nothing is cached across requests.
#[derive(Debug)]
pub struct OrdersByAccount {
    orders: OrderServiceClient<Channel>,
    trace: TraceContext,
}

impl OrdersByAccount {
    pub fn new(orders: OrderServiceClient<Channel>, trace: TraceContext) -> Self {
        Self { orders, trace }
    }
}

impl Loader<String> for OrdersByAccount {
    type Value = Vec<Order>;
    type Error = async_graphql::Error;

    async fn load(&self, account_ids: &[String]) -> Result<HashMap<String, Vec<Order>>, Self::Error> {
        let message = GetOrdersForAccountsRequest { account_ids: account_ids.to_vec() };
        let orders = self
            .orders
            .clone()
            .get_orders_for_accounts(request(message, &self.trace))
            .await
            .map_err(|status| graphql_error("order", status))?
            .into_inner()
            .orders;
        let mut by_account: HashMap<String, Vec<Order>> = HashMap::with_capacity(account_ids.len());
        for order in orders {
            by_account.entry(order.account_id.clone()).or_default().push(order.try_into()?);
        }
        Ok(by_account)
    }
}
