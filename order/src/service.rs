//! The order use cases. The service owns the transaction boundary: an order, its lines and its outbox events are
//! committed together or not at all.

use std::sync::Arc;

use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::{ServiceError, pagination::Page};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    directory::Directory,
    domain::{NewOrder, Order, OrderError},
    repository,
};

/// The most accounts one batch look-up may ask for.
pub const MAX_ACCOUNTS_PER_CALL: usize = 1_000;

/// When an order is validated.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Before `PostOrder` answers, against the directory: the order is stored confirmed or not at all.
    Synchronous,
    /// Later, by the [`Validator`](crate::validation::Validator): `PostOrder` stores the order pending and wakes it.
    Deferred(Arc<Notify>),
}

/// The order service's use cases, over its database and a [`Directory`] of accounts and products.
#[derive(Debug, Clone)]
pub struct OrderService<D> {
    pool: PgPool,
    directory: D,
    placement: Placement,
}

impl<D: Directory> OrderService<D> {
    pub fn new(pool: PgPool, directory: D, placement: Placement) -> Self {
        Self { pool, directory, placement }
    }

    /// Places an order. Synchronous placement validates it against the directory, prices it and stores it
    /// confirmed with its `OrderPlaced` and `OrderConfirmed` events (an unknown account or product is NOT_FOUND and
    /// stores nothing). Deferred placement stores it pending with its `OrderPlaced` event and returns at once.
    #[tracing::instrument(skip_all, fields(account_id = %new_order.account_id(), order_id))]
    pub async fn place_order(
        &self,
        new_order: NewOrder,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        let (order, events) = self.place(new_order, trace).await?;
        tracing::Span::current().record("order_id", tracing::field::display(order.id));

        let mut transaction = self.pool.begin().await?;
        repository::insert_order(&mut transaction, &order, trace).await?;
        for event in &events {
            outbox::append(&mut transaction, event).await?;
        }
        transaction.commit().await?;

        if let Placement::Deferred(validator) = &self.placement {
            validator.notify_one();
        }
        tracing::info!(order_id = %order.id, status = order.status.as_str(), "Placed an order.");
        Ok(order)
    }

    /// The order as placement makes it, with its events: validated and priced against the directory (synchronous
    /// placement), or pending (deferred). Stores nothing.
    async fn place(
        &self,
        new_order: NewOrder,
        trace: &TraceContext,
    ) -> Result<(Order, Vec<Envelope>), ServiceError> {
        if let Placement::Deferred(_) = self.placement {
            let (order, placed) = Order::place(new_order);
            return Ok((order, vec![Envelope::new(&placed, Some(trace))]));
        }
        let account_id = new_order.account_id();
        if !self.directory.account_exists(account_id, trace).await? {
            return Err(ServiceError::NotFound(format!("account {account_id} does not exist")));
        }
        let catalog = self.directory.products(&new_order.product_ids(), trace).await?;
        let (mut order, placed) = Order::place(new_order);
        let confirmed = order.confirm(&catalog).map_err(|error| match error {
            OrderError::UnknownProducts(_) => ServiceError::NotFound(error.to_string()),
            OrderError::TotalTooLarge => ServiceError::invalid("lines", error.to_string()),
            OrderError::NotPending(_) => ServiceError::Unexpected(anyhow::Error::new(error)),
        })?;
        Ok((order, vec![Envelope::new(&placed, Some(trace)), Envelope::new(&confirmed, Some(trace))]))
    }

    pub async fn order(&self, id: Uuid) -> Result<Order, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        repository::find_order(&mut connection, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("order {id} does not exist")))
    }

    /// A page of each given account's orders, newest first.
    pub async fn orders_for_accounts(
        &self,
        account_ids: &[Uuid],
        page: Page,
    ) -> Result<Vec<Order>, ServiceError> {
        if account_ids.len() > MAX_ACCOUNTS_PER_CALL {
            return Err(ServiceError::invalid(
                "account_ids",
                format!("must hold at most {MAX_ACCOUNTS_PER_CALL} ids"),
            ));
        }
        let mut account_ids = account_ids.to_vec();
        account_ids.sort_unstable();
        account_ids.dedup();
        let mut connection = self.pool.acquire().await?;
        Ok(repository::orders_for_accounts(&mut connection, &account_ids, page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{directory::fake::InMemoryDirectory, domain::OrderStatus};

    fn service(directory: InMemoryDirectory, placement: Placement) -> OrderService<InMemoryDirectory> {
        // Placement decides without the database; the pool never connects.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("a valid URL");
        OrderService::new(pool, directory, placement)
    }

    #[tokio::test]
    async fn synchronous_placement_prices_and_confirms_an_order_for_known_names() {
        // Given
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));
        let new_order = NewOrder::parse(&account.to_string(), [(&*kettle.to_string(), 2)]).unwrap();

        // When
        let (order, events) = service(directory, Placement::Synchronous)
            .place(new_order, &TraceContext::new_root())
            .await
            .unwrap();

        // Then
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.total_price_cents, Some(4_998));
        let types: Vec<&str> = events.iter().map(|event| event.event_type.as_str()).collect();
        assert_eq!(types, ["shop.order.placed.v1", "shop.order.confirmed.v1"]);
    }

    #[tokio::test]
    async fn synchronous_placement_of_an_unknown_account_or_product_is_not_found() {
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));
        let service = service(directory, Placement::Synchronous);
        let trace = TraceContext::new_root();

        let ghost_account =
            NewOrder::parse(&Uuid::now_v7().to_string(), [(&*kettle.to_string(), 1)]).unwrap();
        let ghost_product =
            NewOrder::parse(&account.to_string(), [(&*Uuid::now_v7().to_string(), 1)]).unwrap();

        assert!(matches!(service.place(ghost_account, &trace).await, Err(ServiceError::NotFound(_))));
        assert!(matches!(service.place(ghost_product, &trace).await, Err(ServiceError::NotFound(_))));
    }

    #[tokio::test]
    async fn deferred_placement_asks_nothing_and_leaves_the_order_pending() {
        // An empty directory: deferred placement does not look anything up.
        let new_order =
            NewOrder::parse(&Uuid::now_v7().to_string(), [(&*Uuid::now_v7().to_string(), 1)]).unwrap();

        let (order, events) = service(InMemoryDirectory::default(), Placement::Deferred(Arc::default()))
            .place(new_order, &TraceContext::new_root())
            .await
            .unwrap();

        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(events.len(), 1);
    }
}
