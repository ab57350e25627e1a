//! Projection mode: the catalog's answers about stock, consumed from `shop.stock-reservations.v1` by the consumer
//! toolkit. Each batch settles its answers ([`settle`]) in the transaction that also stores the consumed offsets
//! and the orders' outbox rows: an answer is applied once, however often Kafka delivers it, and the order's event
//! is published exactly when its transition commits.

use shop_events::{
    stock::{ReservationStatus, StockEvent},
    topics,
};
use shop_projection::{Outcome, Projection, ProjectionError, Record};
use sqlx::PgTransaction;

use super::{StockAnswer, settle};
use crate::domain::Shortage;

/// The consumer of the catalog's answers.
#[derive(Debug, Clone, Default)]
pub struct StockAnswers;

impl StockAnswers {
    /// Its consumer group and its key in `projection_offsets`.
    pub const NAME: &'static str = "order.stock-answers";
    /// The topic it reads.
    pub const TOPICS: &'static [&'static str] = &[topics::STOCK_RESERVATIONS];
}

/// The answer a stock event gives the order.
fn answer(event: &StockEvent) -> StockAnswer {
    let reservation = event.reservation();
    match reservation.status {
        ReservationStatus::Reserved => StockAnswer::Reserved,
        ReservationStatus::Released => StockAnswer::Released,
        ReservationStatus::Rejected => StockAnswer::Rejected(
            reservation
                .shortages
                .iter()
                .map(|shortage| Shortage {
                    product_id: shortage.product_id,
                    requested: shortage.requested,
                    available: shortage.available,
                })
                .collect(),
        ),
    }
}

impl Projection for StockAnswers {
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
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let Some(event_type) = record.event_type() else {
                outcomes.push(Outcome::Skipped(format!("no ce_type header on {}", record.topic)));
                continue;
            };
            let event = match StockEvent::decode(event_type, record.payload()) {
                Ok(event) => event,
                Err(error) => {
                    outcomes.push(Outcome::Skipped(format!("{event_type} on {}: {error}", record.topic)));
                    continue;
                }
            };
            let settled = settle(transaction, event.reservation().order_id, &answer(&event)).await?;
            outcomes.push(if settled.is_some() { Outcome::Applied } else { Outcome::Ignored });
        }
        Ok(outcomes)
    }
}
