//! The catalog's step of the order saga, as a consumer of `shop.orders.v1` (`catalog.stock-reservations`).
//!
//! An order awaiting stock is reserved for; an order rejected or cancelled while a release is pending is released.
//! Each batch of records is applied in one transaction that also holds the consumer's offsets and the outbox rows
//! of its answers, so an answer is written exactly when its record counts as consumed. A record Kafka delivers again
//! at the same offset is recognised by those offsets; the same event published again at a new offset (a relay that
//! repeats itself) is answered from the reservation the order already has, and writes nothing.

use shop_events::{
    DecodeError,
    order::{Order, OrderEvent, OrderStatus},
    topics,
};
use shop_projection::{Outcome, Projection, ProjectionError, Record};
use sqlx::PgTransaction;

use super::reservations;
use crate::{domain::StockRequest, repository};

/// Reserves and releases stock as orders ask.
#[derive(Debug, Clone, Default)]
pub struct StockSaga;

/// What an order event asks of the catalog.
#[derive(Debug)]
enum Step<'a> {
    Reserve(&'a Order),
    Release(&'a Order),
    Nothing,
}

impl StockSaga {
    /// Its consumer group and its key in `projection_offsets`.
    pub const NAME: &'static str = "catalog.stock-reservations";
    const TOPICS: &'static [&'static str] = &[topics::ORDERS];

    fn step(event: &OrderEvent) -> Step<'_> {
        let order = event.order();
        let releasing = order.stock_release_pending;
        match event {
            OrderEvent::AwaitingStock(_) => Step::Reserve(order),
            OrderEvent::Rejected(_) | OrderEvent::Cancelled(_) if releasing => Step::Release(order),
            // A republished order says where it stands: the step its state asks for, which is idempotent.
            OrderEvent::Republished(_) => match order.status {
                OrderStatus::AwaitingStock => Step::Reserve(order),
                OrderStatus::Rejected | OrderStatus::Cancelled if releasing => Step::Release(order),
                _ => Step::Nothing,
            },
            _ => Step::Nothing,
        }
    }

    async fn apply_one(
        &self,
        transaction: &mut PgTransaction<'_>,
        record: &Record,
    ) -> Result<Outcome, ProjectionError> {
        let event = match decode(record) {
            Ok(event) => event,
            Err(skipped) => return Ok(skipped),
        };
        // The answer continues the trace of the event that asked for it.
        let trace = record.metadata().ok().and_then(|metadata| metadata.trace).map(|trace| trace.child());
        let answer = match Self::step(&event) {
            Step::Nothing => return Ok(Outcome::Ignored),
            Step::Reserve(order) => {
                let request = match StockRequest::merging(
                    order.lines.iter().map(|line| (line.product_id, line.quantity)),
                ) {
                    Ok(request) => request,
                    Err(violations) => {
                        return Ok(Outcome::Skipped(format!(
                            "order {} cannot be reserved for: {violations:?}",
                            order.id
                        )));
                    }
                };
                reservations::reserve(transaction, order.id, &request, trace.as_ref()).await?
            }
            Step::Release(order) => reservations::release(transaction, order.id, trace.as_ref()).await?,
        };
        Ok(if answer.changed { Outcome::Applied } else { Outcome::Ignored })
    }
}

/// The order event a record carries, or why it is skipped.
fn decode(record: &Record) -> Result<OrderEvent, Outcome> {
    let event_type = record.event_type().ok_or_else(|| Outcome::Skipped("no ce_type header".into()))?;
    OrderEvent::decode(event_type, record.payload()).map_err(|error| match error {
        // A newer kind of order event asks nothing of the catalog that it knows of.
        DecodeError::UnknownType(_) => Outcome::Ignored,
        error => Outcome::Skipped(format!("{event_type}: {error}")),
    })
}

impl Projection for StockSaga {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn topics(&self) -> &[&'static str] {
        Self::TOPICS
    }

    async fn apply(
        &self,
        transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> Result<Vec<Outcome>, ProjectionError> {
        lock_batch_products(transaction, records).await?;
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(self.apply_one(transaction, record).await?);
        }
        Ok(outcomes)
    }
}

/// Locks, in id order and before anything else, every product the batch's orders name. Records one by one would
/// lock each order's products in order, but a batch's transaction holds them all until it commits: taken record by
/// record, a later order's products could be locked before an earlier one's, against the order every other
/// transaction takes them in.
async fn lock_batch_products(
    transaction: &mut PgTransaction<'_>,
    records: &[Record],
) -> Result<(), sqlx::Error> {
    let mut ids: Vec<_> = records
        .iter()
        .filter_map(|record| decode(record).ok())
        .filter(|event| !matches!(StockSaga::step(event), Step::Nothing))
        .flat_map(|event| event.order().lines.iter().map(|line| line.product_id).collect::<Vec<_>>())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        repository::lock_products(transaction, &ids).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use shop_events::order::{
        OrderAwaitingStock, OrderCancelled, OrderConfirmed, OrderLine, OrderRejected, OrderRepublished,
    };
    use uuid::Uuid;

    use super::*;

    fn order(status: OrderStatus, stock_release_pending: bool) -> Order {
        let priced = matches!(status, OrderStatus::AwaitingStock | OrderStatus::Confirmed);
        Order {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            status,
            lines: vec![OrderLine { product_id: Uuid::now_v7(), quantity: 1, product: None }],
            total_price_cents: priced.then_some(0),
            rejection_reason: (status == OrderStatus::Rejected).then(|| "short of stock".into()),
            version: 2,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            history: Vec::new(),
            stock_release_pending,
        }
    }

    fn step(event: &OrderEvent) -> &'static str {
        match StockSaga::step(event) {
            Step::Reserve(_) => "reserve",
            Step::Release(_) => "release",
            Step::Nothing => "nothing",
        }
    }

    #[test]
    fn an_order_awaiting_stock_is_reserved_for_and_a_failed_one_released_only_while_pending() {
        use OrderStatus::*;
        let cases = [
            (OrderEvent::AwaitingStock(OrderAwaitingStock { order: order(AwaitingStock, false) }), "reserve"),
            (OrderEvent::Republished(OrderRepublished { order: order(AwaitingStock, false) }), "reserve"),
            (OrderEvent::Cancelled(OrderCancelled { order: order(Cancelled, true) }), "release"),
            (OrderEvent::Rejected(OrderRejected { order: order(Rejected, true) }), "release"),
            (OrderEvent::Republished(OrderRepublished { order: order(Cancelled, true) }), "release"),
            (OrderEvent::Republished(OrderRepublished { order: order(Rejected, true) }), "release"),
            (OrderEvent::Rejected(OrderRejected { order: order(Rejected, false) }), "nothing"),
            (OrderEvent::Cancelled(OrderCancelled { order: order(Cancelled, false) }), "nothing"),
            (OrderEvent::Republished(OrderRepublished { order: order(Confirmed, false) }), "nothing"),
            (OrderEvent::Confirmed(OrderConfirmed { order: order(Confirmed, false) }), "nothing"),
        ];

        for (event, expected) in cases {
            assert_eq!(step(&event), expected, "{event:?}");
        }
    }
}
