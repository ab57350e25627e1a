//! Stock reservation events, published by the catalog on
//! [`topics::STOCK_RESERVATIONS`](crate::topics::STOCK_RESERVATIONS) and keyed by order id.
//!
//! The catalog keeps one reservation per order: the order saga's stock step. An order awaiting stock
//! (`shop.order.awaiting_stock.v1`, or `ReserveStock` over gRPC) is answered `reserved` (every line held) or
//! `rejected` (nothing held; `shortages` says what was missing); an order that then fails or is cancelled releases
//! what was held (`released`). Every event carries the whole reservation as it stands after it. A reservation moves
//! only forward — reserved or rejected, then released — so an answer repeated by a redelivery changes nothing, and
//! stock is never given back twice.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{AggregateType, domain_event, event_family, invariants};

/// Where a reservation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Every line is held for the order.
    Reserved,
    /// Some line could not be held; nothing is.
    Rejected,
    /// Whatever was held went back to stock (or nothing was ever held: a release that came first, or after a
    /// rejection, leaves the reservation released so that no later request holds stock for the order).
    Released,
}

/// A reservation's full state as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reservation {
    /// The order the stock is for: one reservation per order.
    pub order_id: Uuid,
    pub status: ReservationStatus,
    /// What the order asked for, one line per product.
    pub lines: Vec<StockLine>,
    /// Whether `lines` are held now: true exactly while `reserved`. A release gives back what a reservation held
    /// (`held` turns false); one of a rejected or never-made reservation gives back nothing.
    pub held: bool,
    /// Why a `rejected` reservation could hold nothing: every line short of stock. Empty otherwise.
    pub shortages: Vec<Shortage>,
    /// 1 when the catalog first decided, one more per change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A product and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// A line the catalog could not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shortage {
    pub product_id: Uuid,
    pub requested: u32,
    /// Units available when the catalog decided; absent when the catalog does not know the product.
    pub available: Option<i64>,
}

impl Reservation {
    /// Most lines an order holds, as the order service allows.
    const MAX_LINES: usize = 100;

    /// The catalog's rules: ids, at most 100 lines of quantity 1 or more, `held` exactly while reserved, shortages
    /// exactly when rejected (each asking more than was available), a version of 1 or more.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::id("reservation.order_id", self.order_id)?;
        invariants::positive("reservation.version", self.version)?;
        if self.lines.len() > Self::MAX_LINES {
            return Err(format!("reservation.lines must hold at most {} lines", Self::MAX_LINES));
        }
        for line in &self.lines {
            invariants::id("reservation.lines.product_id", line.product_id)?;
            invariants::positive("reservation.lines.quantity", line.quantity.into())?;
        }
        if self.held != (self.status == ReservationStatus::Reserved) {
            return Err("reservation.held must be true exactly while the reservation is reserved".into());
        }
        if (self.status == ReservationStatus::Rejected) == self.shortages.is_empty() {
            return Err(
                "reservation.shortages must be present exactly when the reservation is rejected".into()
            );
        }
        for shortage in &self.shortages {
            invariants::id("reservation.shortages.product_id", shortage.product_id)?;
            if shortage
                .available
                .is_some_and(|available| available < 0 || available >= shortage.requested.into())
            {
                return Err(
                    "reservation.shortages.available must be between 0 and less than requested".into()
                );
            }
        }
        Ok(())
    }
}

/// `shop.stock.reserved.v1`: every line of the order is held for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockReserved {
    pub reservation: Reservation,
}

/// `shop.stock.rejected.v1`: some line of the order could not be held, so none is; `reservation.shortages` says
/// which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockRejected {
    pub reservation: Reservation,
}

/// `shop.stock.released.v1`: the order failed or was cancelled; what was held for it (if anything) is back in
/// stock, and nothing will be held for it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockReleased {
    pub reservation: Reservation,
}

domain_event!(StockReserved, AggregateType::STOCK_RESERVATION, "shop.stock.reserved" v 1, reservation.order_id);
domain_event!(StockRejected, AggregateType::STOCK_RESERVATION, "shop.stock.rejected" v 1, reservation.order_id);
domain_event!(StockReleased, AggregateType::STOCK_RESERVATION, "shop.stock.released" v 1, reservation.order_id);

event_family! {
    /// Every event on the stock reservations topic.
    pub enum StockEvent {
        Reserved(StockReserved),
        Rejected(StockRejected),
        Released(StockReleased),
    }
}

impl StockEvent {
    /// The reservation after the event, whichever event it is.
    pub fn reservation(&self) -> &Reservation {
        match self {
            Self::Reserved(StockReserved { reservation })
            | Self::Rejected(StockRejected { reservation })
            | Self::Released(StockReleased { reservation }) => reservation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeError, Envelope, envelope::now, topics};

    fn reservation(status: ReservationStatus) -> Reservation {
        let at = now();
        let product_id = Uuid::now_v7();
        Reservation {
            order_id: Uuid::now_v7(),
            status,
            lines: vec![StockLine { product_id, quantity: 2 }],
            held: status == ReservationStatus::Reserved,
            shortages: if status == ReservationStatus::Rejected {
                vec![Shortage { product_id, requested: 2, available: Some(1) }]
            } else {
                Vec::new()
            },
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn stock_events_round_trip_keyed_by_order_on_their_topic() {
        let reserved = StockReserved { reservation: reservation(ReservationStatus::Reserved) };
        let envelope = Envelope::new(&reserved, None);

        let payload = serde_json::to_vec(&envelope.payload).unwrap();
        let decoded = StockEvent::decode(&envelope.event_type, &payload).unwrap();

        assert_eq!(envelope.event_type, "shop.stock.reserved.v1");
        assert_eq!(envelope.topic, topics::STOCK_RESERVATIONS);
        assert_eq!(envelope.aggregate_type, "stock_reservation");
        assert_eq!(envelope.aggregate_id, reserved.reservation.order_id);
        assert_eq!(decoded.reservation(), &reserved.reservation);
        assert_eq!(json_status(&envelope), "reserved");
    }

    fn json_status(envelope: &Envelope) -> &str {
        envelope.payload["reservation"]["status"].as_str().unwrap()
    }

    #[test]
    fn a_reservation_no_catalog_could_write_is_refused_at_decode_time() {
        let reserved = || reservation(ReservationStatus::Reserved);
        let rejected = || reservation(ReservationStatus::Rejected);
        let forged = [
            Reservation { order_id: Uuid::nil(), ..reserved() },
            Reservation { held: false, ..reserved() },
            Reservation { held: true, ..reservation(ReservationStatus::Released) },
            Reservation { shortages: Vec::new(), ..rejected() },
            Reservation { shortages: rejected().shortages, ..reserved() },
            Reservation {
                shortages: vec![Shortage { product_id: Uuid::now_v7(), requested: 2, available: Some(2) }],
                ..rejected()
            },
            Reservation { version: 0, ..reserved() },
        ];

        for reservation in forged {
            let payload = serde_json::to_vec(&StockRejected { reservation: reservation.clone() }).unwrap();
            let error = StockEvent::decode("shop.stock.rejected.v1", &payload).unwrap_err();
            assert!(matches!(error, DecodeError::Invalid(_)), "{reservation:?}: {error}");
        }
    }
}
