//! The order saga's stock step, on the order's side. An order naming a product that tracks its stock waits as
//! `AWAITING_STOCK` (priced) for the catalog's reservation; the catalog answers reserved, rejected (with what was
//! short) or, after the order failed or was cancelled, released.
//!
//! - [`settle`]: applies one answer of the catalog to the order it is for, with the event of the transition, in
//!   the caller's transaction — the same rule whether the answer came over Kafka or over gRPC. Answers are
//!   idempotent: a repeated or late one (for an order no longer awaiting) changes nothing.
//! - [`answers`]: projection mode: the consumer of `shop.stock-reservations.v1`, which settles each answer in one
//!   transaction with its Kafka offset and the order's outbox row (consume → decide → publish).
//! - [`catalog`]: `grpc` mode: `ReserveStock` / `ReleaseStock` over gRPC, with the order id as idempotency key.
//! - [`deadlines`]: every waiting step has a deadline: an order awaiting stock too long is rejected (once, however
//!   many replicas run) and owes a release; in `grpc` mode, releases still owed are retried until the catalog
//!   confirms them.

pub mod answers;
pub mod catalog;
pub mod deadlines;

use shop_events::TraceContext;
use shop_outbox as outbox;
use sqlx::PgTransaction;
use uuid::Uuid;

use crate::{
    domain::{Order, OrderStatus, Shortage},
    metrics, repository,
};

/// What the catalog says of an order's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockAnswer {
    /// Every line is held.
    Reserved,
    /// Nothing is held: these lines were short.
    Rejected(Vec<Shortage>),
    /// Whatever was held went back to stock; nothing will be held for the order again.
    Released,
}

/// Applies `answer` to order `order_id` inside the caller's transaction (the order row locked until it ends):
/// reserved confirms an order awaiting stock; rejected rejects it, naming the shortages; released completes a
/// release the order owes. Returns the order after its transition, or `None` when the answer changes nothing (an
/// order that is not ours, no longer awaits stock, or owes no release): repeated and late answers are harmless.
pub async fn settle(
    transaction: &mut PgTransaction<'_>,
    order_id: Uuid,
    answer: &StockAnswer,
) -> Result<Option<Order>, sqlx::Error> {
    let Some((mut order, trace)) = repository::lock_order(transaction, order_id).await? else {
        return Ok(None);
    };
    let awaiting = order.status == OrderStatus::AwaitingStock;
    let event = match answer {
        StockAnswer::Reserved if awaiting => order.stock_reserved().ok(),
        StockAnswer::Rejected(shortages) if awaiting => order.stock_rejected(shortages).ok(),
        StockAnswer::Released => order.stock_released(),
        _ => None,
    };
    let Some(event) = event else { return Ok(None) };
    // The events of the saga join the trace of the request that placed the order.
    let trace = trace.map(|trace| trace.child()).unwrap_or_else(TraceContext::new_root);
    repository::update_order(transaction, &order).await?;
    outbox::append(transaction, &event.to_envelope(Some(&trace))).await?;
    if awaiting {
        // In the caller's transaction, which may yet fail: see `metrics` on why that is counted anyway.
        metrics::settled(&order);
    }
    tracing::info!(
        order_id = %order.id,
        status = order.status.as_str(),
        reason = order.rejection_reason.as_deref(),
        stock_release_pending = order.stock_release_pending,
        "Settled an answer of the catalog about an order's stock."
    );
    Ok(Some(order))
}
