//! The order use cases. The service owns the transaction boundary: an order, its lines and its outbox events are
//! committed together or not at all.

use shop_events::{Envelope, TraceContext, outbox};
use shop_platform::ServiceError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    directory::Directory,
    domain::{NewOrder, Order, OrderError},
    repository,
};

/// The most accounts one batch look-up may ask for.
pub const MAX_ACCOUNTS_PER_CALL: usize = 1_000;

/// The order service's use cases, over its database and a [`Directory`] of accounts and products.
#[derive(Debug, Clone)]
pub struct OrderService<D> {
    pool: PgPool,
    directory: D,
}

impl<D: Directory> OrderService<D> {
    pub fn new(pool: PgPool, directory: D) -> Self {
        Self { pool, directory }
    }

    /// Validates the order against the directory, prices it, and stores it confirmed with its `OrderPlaced` and
    /// `OrderConfirmed` events, in one transaction. An unknown account or product is NOT_FOUND and stores nothing.
    #[tracing::instrument(skip_all, fields(account_id = %new_order.account_id(), order_id))]
    pub async fn place_order(
        &self,
        new_order: NewOrder,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        let account_id = new_order.account_id();
        if !self.directory.account_exists(account_id, trace).await? {
            return Err(ServiceError::NotFound(format!(
                "account {account_id} does not exist"
            )));
        }
        let catalog = self.directory.products(&new_order.product_ids(), trace).await?;

        let (mut order, placed) = Order::place(new_order);
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        let confirmed = order.confirm(&catalog).map_err(|error| match error {
            OrderError::UnknownProducts(_) => ServiceError::NotFound(error.to_string()),
            OrderError::TotalTooLarge => ServiceError::invalid("lines", error.to_string()),
            OrderError::NotPending(_) => ServiceError::Unexpected(anyhow::Error::new(error)),
        })?;

        let mut transaction = self.pool.begin().await?;
        repository::insert_order(&mut transaction, &order).await?;
        outbox::append(&mut transaction, &Envelope::new(&placed, Some(trace))).await?;
        outbox::append(&mut transaction, &Envelope::new(&confirmed, Some(trace))).await?;
        transaction.commit().await?;

        tracing::info!(order_id = %order.id, total_price_cents = order.total_price_cents, "Placed and confirmed an order.");
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
