//! Subscriptions: orders as they change, pushed over WebSocket (see `crate::http::websocket`).
//!
//! Each one starts listening to the order topic ([`OrderFeed::listen`]) *before* it reads the current state from
//! the order service, then sends that state, then every version from the topic newer than the last one it sent. A
//! version committed after the read reaches the topic after the listening began, so none is missed; one the read
//! already returned, or a record the relay published twice, is not newer, so none is sent twice. Versions of one
//! order are published in order on one partition, so they arrive in order.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Context, ErrorExtensions, ID, Result, ResultExt, Subscription as GraphqlSubscription};
use futures::{Stream, StreamExt, stream};
use shop_events::{TraceContext, order as events};

use super::{
    errors::{ErrorCode, bad_input},
    inputs::uuid,
    types::Order,
};
use crate::{
    auth::Caller,
    live::{Connection, Interest, ListenError, Listener, OrderFeed},
    services::{Call, CallError, Page, Services},
};

/// Most orders `accountOrders` sends as the account's current state.
const MAX_FIRST: i32 = 100;
/// Orders whose last version `accountOrders` remembers (to drop repeats); past it, those already final are forgotten.
const MAX_REMEMBERED_ORDERS: usize = 4_096;

/// Subscriptions.
#[derive(Debug, Default)]
pub struct Subscription;

#[GraphqlSubscription]
impl Subscription {
    /// The order with `id` as it changes: first its current state, then every later version, in order, each once;
    /// the subscription completes after the order can change no more: a final status (`CONFIRMED`, `REJECTED` or
    /// `CANCELLED`) with no stock release pending (`stockReleasePending` false). NOT_FOUND when there is no such
    /// order, or when it is another customer's. Needs a token.
    async fn order_updated(&self, ctx: &Context<'_>, id: ID) -> Result<impl Stream<Item = Order> + use<>> {
        let id = uuid("id", &id)?;
        let (listener, call) = listen(ctx, Interest::Order(id.parse()?)).await?;
        let services = ctx.data::<Services>()?;
        let current = services.order(&id, &call).await.extend()?;
        let current = Order::try_from(
            current.ok_or_else(|| CallError::NotFound(format!("order {id} does not exist")).extend())?,
        )?;
        let (last_version, done) = (current.version, current.is_settled());
        let later =
            stream::unfold((listener, last_version, done), |(mut listener, mut last, done)| async move {
                if done {
                    return None;
                }
                let order = next_newer(&mut listener, &mut last).await?;
                let done = order.is_settled();
                Some((order, (listener, last, done)))
            });
        Ok(stream::once(std::future::ready(current)).chain(later))
    }

    /// The orders of the account `accountId` as they change: first the current state of its newest `first` orders
    /// (20 unless said, at most 100; oldest of them first), then every later version of any of its orders —
    /// including orders placed from now on — in order, each once. Never completes by itself. NOT_FOUND when there
    /// is no such account, or when it is another customer's. Needs a token.
    async fn account_orders(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(default = 20)] first: i32,
    ) -> Result<impl Stream<Item = Order> + use<>> {
        if !(1..=MAX_FIRST).contains(&first) {
            return Err(bad_input("first", &format!("must be between 1 and {MAX_FIRST}")));
        }
        let account_id = uuid("accountId", &account_id)?;
        let (listener, call) = listen(ctx, Interest::Account(account_id.parse()?)).await?;
        let services = ctx.data::<Services>()?;
        if services.account(&account_id, &call).await.extend()?.is_none() {
            return Err(CallError::NotFound(format!("account {account_id} does not exist")).extend());
        }
        let page = Page { take: u32::try_from(first).unwrap_or(20), ..Page::default() };
        let mut current: Vec<Order> = (services.orders_for_accounts(vec![account_id], page, &call).await)
            .extend()?
            .into_iter()
            .map(Order::try_from)
            .collect::<Result<_>>()?;
        current.reverse();
        let mut sent = SentVersions::default();
        for order in &current {
            sent.is_newer(order);
        }
        let later = stream::unfold((listener, sent), |(mut listener, mut sent)| async move {
            loop {
                let order = Order::from(listener.next().await?.as_ref());
                if sent.is_newer(&order) {
                    return Some((order, (listener, sent)));
                }
            }
        });
        Ok(stream::iter(current).chain(later))
    }
}

/// Starts listening for `interest` for the connection the subscription arrived on, and the [`Call`] its service
/// calls make (a new trace per subscription, the connection's caller).
async fn listen(ctx: &Context<'_>, interest: Interest) -> Result<(Listener, Call)> {
    let (feed, connection, caller) =
        (ctx.data::<OrderFeed>()?, ctx.data::<Connection>()?, ctx.data::<Caller>()?);
    let call = Call::new(TraceContext::new_root(), caller.clone());
    let listener = feed.listen(interest, connection).await.map_err(|error| match error {
        ListenError::Unavailable(_) => ErrorCode::Unavailable.error(error.to_string()),
        ListenError::ConnectionFull(_) | ListenError::ProcessFull(_) => {
            ErrorCode::TooManyRequests.error(error.to_string())
        }
    })?;
    Ok((listener, call))
}

/// The next order from `listener` newer than `last_version`, which it then becomes; `None` when the listener ends.
async fn next_newer(listener: &mut Listener, last_version: &mut i64) -> Option<Order> {
    loop {
        let order: Arc<events::Order> = listener.next().await?;
        if order.version > *last_version {
            *last_version = order.version;
            return Some(Order::from(order.as_ref()));
        }
    }
}

/// The last version sent of each order of an `accountOrders` subscription.
#[derive(Debug, Default)]
struct SentVersions {
    /// Per order: the last version sent, and whether it was settled (see [`Order::is_settled`]).
    orders: HashMap<ID, (i64, bool)>,
}

impl SentVersions {
    /// Whether `order` is newer than what was sent of it (and then records it as sent).
    fn is_newer(&mut self, order: &Order) -> bool {
        if self.orders.get(&order.id).is_some_and(|(version, _)| *version >= order.version) {
            return false;
        }
        if self.orders.len() >= MAX_REMEMBERED_ORDERS {
            // Settled orders change no more: a repeat of one is all forgetting it could let through.
            self.orders.retain(|_, (_, settled)| !*settled);
        }
        self.orders.insert(order.id.clone(), (order.version, order.is_settled()));
        true
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::schema::types::OrderStatus;

    fn order(id: &str, version: i64, status: OrderStatus) -> Order {
        Order {
            id: ID(id.to_owned()),
            account_id: ID(Uuid::nil().to_string()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version,
            status,
            total_price: None,
            rejection_reason: None,
            products: Vec::new(),
            history: Vec::new(),
            stock_release_pending: false,
        }
    }

    #[test]
    fn only_versions_newer_than_the_last_sent_pass() {
        let mut sent = SentVersions::default();

        assert!(sent.is_newer(&order("a", 1, OrderStatus::Pending)));
        assert!(!sent.is_newer(&order("a", 1, OrderStatus::Pending)), "a repeat");
        assert!(sent.is_newer(&order("b", 1, OrderStatus::Pending)), "another order");
        assert!(sent.is_newer(&order("a", 2, OrderStatus::Confirmed)));
        assert!(!sent.is_newer(&order("a", 1, OrderStatus::Pending)), "an older version");
    }

    #[test]
    fn past_the_limit_final_orders_are_forgotten_and_pending_ones_kept() {
        let mut sent = SentVersions::default();
        for n in 0..MAX_REMEMBERED_ORDERS - 1 {
            sent.is_newer(&order(&format!("final-{n}"), 2, OrderStatus::Confirmed));
        }
        sent.is_newer(&order("pending", 1, OrderStatus::Pending));

        assert!(sent.is_newer(&order("one-more", 1, OrderStatus::Pending)));

        assert_eq!(sent.orders.len(), 2);
        assert!(!sent.is_newer(&order("pending", 1, OrderStatus::Pending)));
    }

    #[test]
    fn cancelled_orders_are_final_and_orders_awaiting_stock_are_not() {
        let finals: Vec<_> = [
            OrderStatus::Pending,
            OrderStatus::AwaitingStock,
            OrderStatus::Confirmed,
            OrderStatus::Rejected,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .filter(|status| status.is_final())
        .collect();

        assert_eq!(finals, [OrderStatus::Confirmed, OrderStatus::Rejected, OrderStatus::Cancelled]);
    }

    #[test]
    fn an_order_whose_stock_release_is_pending_is_not_settled_so_not_forgotten() {
        let mut sent = SentVersions::default();
        let releasing =
            Order { stock_release_pending: true, ..order("releasing", 3, OrderStatus::Cancelled) };
        for n in 0..MAX_REMEMBERED_ORDERS - 1 {
            sent.is_newer(&order(&format!("final-{n}"), 2, OrderStatus::Cancelled));
        }
        sent.is_newer(&releasing);

        assert!(!releasing.is_settled());
        assert!(sent.is_newer(&order("one-more", 1, OrderStatus::Pending)));

        assert!(!sent.is_newer(&releasing), "remembered: its release is still to come");
        assert!(sent.is_newer(&order("releasing", 4, OrderStatus::Cancelled)));
    }
}
