//! The order use cases. The service owns the transaction boundary: an order, its lines and its outbox events are
//! committed together or not at all.

use std::sync::Arc;

use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::ServiceError;
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
        let mut events = Vec::with_capacity(2);
        let order = match &self.placement {
            Placement::Synchronous => {
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
                events.push(Envelope::new(&placed, Some(trace)));
                events.push(Envelope::new(&confirmed, Some(trace)));
                order
            }
            Placement::Deferred(_) => {
                let (order, placed) = Order::place(new_order);
                events.push(Envelope::new(&placed, Some(trace)));
                order
            }
        };
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

    pub async fn order(&self, id: Uuid) -> Result<Order, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        repository::find_order(&mut connection, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("order {id} does not exist")))
    }

    /// Every order of the given accounts, newest first.
    pub async fn orders_for_accounts(&self, account_ids: &[Uuid]) -> Result<Vec<Order>, ServiceError> {
        if account_ids.len() > MAX_ACCOUNTS_PER_CALL {
            return Err(ServiceError::invalid(
                "account_ids",
                format!("must hold at most {MAX_ACCOUNTS_PER_CALL} ids"),
            ));
        }
        let mut connection = self.pool.acquire().await?;
        Ok(repository::orders_for_accounts(&mut connection, account_ids).await?)
    }
}
