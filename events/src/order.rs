//! Order events, published on [`topics::ORDERS`](crate::topics::ORDERS) and keyed by order id. Every event
//! carries the whole order as it stands after the event.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{AggregateType, domain_event, event_family, invariants};

/// Where an order is in its life: placed orders wait as `pending` until validated; an order naming a product that
/// tracks its stock then waits as `awaiting_stock` (priced) for the catalog to reserve it; it ends `confirmed`
/// (priced, its stock held), `rejected` (with a reason) or `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    AwaitingStock,
    Confirmed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    /// Whether the order can no longer change status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Rejected | Self::Cancelled)
    }
}

/// One step of an order's saga, as the order recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStep {
    pub step: OrderStepKind,
    pub at: DateTime<Utc>,
    /// What the step came to, in words: why an order was rejected or cancelled, what was short of stock.
    pub detail: Option<String>,
}

/// The steps an order's saga takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStepKind {
    /// Stored, pending validation.
    Placed,
    /// Validated and priced; the catalog is asked to reserve stock.
    AwaitingStock,
    /// The catalog holds every line.
    StockReserved,
    /// The catalog could not hold every line, so holds none.
    StockRejected,
    Confirmed,
    Rejected,
    Cancelled,
    /// What the catalog held for the order (if anything) went back to stock.
    StockReleased,
}

/// An order's full state as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub id: Uuid,
    pub account_id: Uuid,
    pub status: OrderStatus,
    /// One line per product (repeated products are merged when the order is placed).
    pub lines: Vec<OrderLine>,
    /// Sum of unit price times quantity over the lines, in cents; absent until the order is priced.
    pub total_price_cents: Option<i64>,
    /// Why the order was rejected; present only for rejected orders.
    pub rejection_reason: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every step of the order's saga so far, oldest first. Empty in events written before it was recorded.
    #[serde(default)]
    pub history: Vec<OrderStep>,
    /// True while the order ended (rejected or cancelled) after the catalog was asked for stock, and the catalog
    /// has not yet said that whatever it held went back: the compensation still to complete.
    #[serde(default)]
    pub stock_release_pending: bool,
}

/// A product and a quantity within an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: u32,
    /// The product as it was when the order was priced; absent until then.
    pub product: Option<PricedProduct>,
}

/// A product's name, description and unit price, frozen when the order was priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PricedProduct {
    pub name: String,
    pub description: String,
    pub unit_price_cents: i64,
}

impl Order {
    /// Most lines an order holds, as the order service allows.
    const MAX_LINES: usize = 100;
    /// Most of one product an order line holds, as the order service allows.
    const MAX_QUANTITY: u32 = 10_000;

    /// The order service's rules: ids, 1–100 lines of quantity 1 to 10 000, priced products as the catalog would
    /// hold them, prices and total of zero or more, a total exactly when awaiting stock or confirmed, a reason
    /// exactly when rejected, a release pending only once rejected or cancelled, a version of 1 or more.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::id("order.id", self.id)?;
        invariants::id("order.account_id", self.account_id)?;
        invariants::positive("order.version", self.version)?;
        if self.lines.is_empty() || self.lines.len() > Self::MAX_LINES {
            return Err(format!(
                "order.lines must hold 1 to {} lines, not {}",
                Self::MAX_LINES,
                self.lines.len()
            ));
        }
        for line in &self.lines {
            line.check_invariants()?;
        }
        let priced = matches!(self.status, OrderStatus::AwaitingStock | OrderStatus::Confirmed);
        if priced != self.total_price_cents.is_some() {
            return Err(
                "order.total_price_cents must be present exactly when the order is awaiting stock or confirmed".into()
            );
        }
        if self.stock_release_pending
            && !matches!(self.status, OrderStatus::Rejected | OrderStatus::Cancelled)
        {
            return Err(
                "order.stock_release_pending may be true only once the order is rejected or cancelled".into(),
            );
        }
        if (self.status == OrderStatus::Rejected) != self.rejection_reason.is_some() {
            return Err("order.rejection_reason must be present exactly when the order is rejected".into());
        }
        if let Some(total) = self.total_price_cents {
            invariants::money("order.total_price_cents", total)?;
        }
        if let Some(reason) = &self.rejection_reason {
            invariants::text("order.rejection_reason", reason, usize::MAX, true, &[])?;
        }
        for step in &self.history {
            if let Some(detail) = &step.detail {
                invariants::text("order.history.detail", detail, usize::MAX, true, &[])?;
            }
        }
        Ok(())
    }
}

impl OrderLine {
    fn check_invariants(&self) -> Result<(), String> {
        invariants::id("order.lines.product_id", self.product_id)?;
        invariants::positive("order.lines.quantity", self.quantity.into())?;
        invariants::at_most("order.lines.quantity", self.quantity.into(), Order::MAX_QUANTITY.into())?;
        if let Some(product) = &self.product {
            invariants::money("order.lines.product.unit_price_cents", product.unit_price_cents)?;
            crate::catalog::check_details("order.lines.product", &product.name, &product.description)?;
        }
        Ok(())
    }
}

/// `shop.order.placed.v1`: an order was placed; its status is `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order: Order,
}

/// `shop.order.awaiting_stock.v1`: the order passed validation and is priced, and names a product that tracks its
/// stock: the catalog is to reserve every line (it answers on the stock reservations topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderAwaitingStock {
    pub order: Order,
}

/// `shop.order.confirmed.v1`: the order passed validation (and, for one that waited for stock, the catalog holds
/// every line); its lines are priced and its total is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    pub order: Order,
}

/// `shop.order.rejected.v1`: the order failed validation, was short of stock, or waited too long;
/// `order.rejection_reason` says why. When it had waited for stock, `order.stock_release_pending` is true until the
/// catalog released what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRejected {
    pub order: Order,
}

/// `shop.order.cancelled.v1`: the order was cancelled before it was final (by its owner or by staff); when it had
/// waited for stock, `order.stock_release_pending` is true until the catalog released what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    pub order: Order,
}

/// `shop.order.stock_released.v1`: the order is rejected or cancelled, and the catalog says that what it held for
/// it (if anything) is back in stock: the compensation completed. Its status does not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStockReleased {
    pub order: Order,
}

/// `shop.order.republished.v1`: nothing happened to the order; this is its current state, appended again by
/// `order republish` at the version it already has ([`republish`](crate::republish)). Apply it like any other
/// event, by version: a consumer that holds this version ignores it, one that lost the order's history gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRepublished {
    pub order: Order,
}

domain_event!(OrderPlaced, AggregateType::ORDER, "shop.order.placed" v 1, order);
domain_event!(OrderAwaitingStock, AggregateType::ORDER, "shop.order.awaiting_stock" v 1, order);
domain_event!(OrderConfirmed, AggregateType::ORDER, "shop.order.confirmed" v 1, order);
domain_event!(OrderRejected, AggregateType::ORDER, "shop.order.rejected" v 1, order);
domain_event!(OrderCancelled, AggregateType::ORDER, "shop.order.cancelled" v 1, order);
domain_event!(OrderStockReleased, AggregateType::ORDER, "shop.order.stock_released" v 1, order);
domain_event!(OrderRepublished, AggregateType::ORDER, "shop.order.republished" v 1, order);

event_family! {
    /// Every event on the orders topic.
    pub enum OrderEvent {
        Placed(OrderPlaced),
        AwaitingStock(OrderAwaitingStock),
        Confirmed(OrderConfirmed),
        Rejected(OrderRejected),
        Cancelled(OrderCancelled),
        StockReleased(OrderStockReleased),
        Republished(OrderRepublished),
    }
}

impl OrderEvent {
    /// The order's state after the event, whichever event it is.
    pub fn order(&self) -> &Order {
        match self {
            Self::Placed(OrderPlaced { order })
            | Self::AwaitingStock(OrderAwaitingStock { order })
            | Self::Confirmed(OrderConfirmed { order })
            | Self::Rejected(OrderRejected { order })
            | Self::Cancelled(OrderCancelled { order })
            | Self::StockReleased(OrderStockReleased { order })
            | Self::Republished(OrderRepublished { order }) => order,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, envelope::now, topics};

    fn order(status: OrderStatus, version: i64) -> Order {
        let priced = status == OrderStatus::Confirmed;
        let at = now();
        Order {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            status,
            lines: vec![OrderLine {
                product_id: Uuid::now_v7(),
                quantity: 3,
                product: priced.then(|| PricedProduct {
                    name: "Kettle".into(),
                    description: "Boils water.".into(),
                    unit_price_cents: 2_499,
                }),
            }],
            total_price_cents: priced.then_some(7_497),
            rejection_reason: (status == OrderStatus::Rejected).then(|| "unknown product".into()),
            version,
            created_at: at,
            updated_at: at,
            history: vec![OrderStep { step: OrderStepKind::Placed, at, detail: None }],
            stock_release_pending: false,
        }
    }

    fn assert_round_trips(envelope: &Envelope, expected: OrderEvent, event_type: &str) {
        let read: Envelope = serde_json::from_str(&serde_json::to_string(envelope).unwrap()).unwrap();
        let payload = serde_json::to_vec(&read.payload).unwrap();

        assert_eq!(&read, envelope);
        assert_eq!(read.event_type, event_type);
        assert_eq!(read.topic, topics::ORDERS);
        assert_eq!(read.aggregate_type, "order");
        assert_eq!(OrderEvent::decode(&read.event_type, &payload).unwrap(), expected);
    }

    #[test]
    fn order_placed_round_trips_through_json() {
        let event = OrderPlaced { order: order(OrderStatus::Pending, 1) };
        let envelope = Envelope::new(&event, None);

        assert_round_trips(&envelope, OrderEvent::Placed(event), "shop.order.placed.v1");
    }

    #[test]
    fn order_confirmed_round_trips_through_json() {
        let event = OrderConfirmed { order: order(OrderStatus::Confirmed, 2) };
        let envelope = Envelope::new(&event, None);

        assert_eq!(envelope.aggregate_version, 2);
        assert_round_trips(&envelope, OrderEvent::Confirmed(event), "shop.order.confirmed.v1");
    }

    #[test]
    fn order_rejected_round_trips_through_json() {
        let event = OrderRejected { order: order(OrderStatus::Rejected, 2) };
        let envelope = Envelope::new(&event, None);

        assert_round_trips(&envelope, OrderEvent::Rejected(event), "shop.order.rejected.v1");
    }

    #[test]
    fn order_republished_round_trips_through_json() {
        let event = OrderRepublished { order: order(OrderStatus::Confirmed, 2) };
        let envelope = Envelope::new(&event, None);

        assert_round_trips(&envelope, OrderEvent::Republished(event.clone()), "shop.order.republished.v1");
        assert_eq!(OrderEvent::Republished(event.clone()).order(), &event.order);
    }

    #[test]
    fn an_order_event_no_order_service_could_write_is_refused_at_decode_time() {
        let confirmed = || order(OrderStatus::Confirmed, 2);
        let with_line = |change: fn(&mut OrderLine)| {
            let mut order = confirmed();
            change(&mut order.lines[0]);
            order
        };
        let forged = [
            Order { account_id: Uuid::nil(), ..confirmed() },
            Order { lines: Vec::new(), ..confirmed() },
            Order { lines: vec![confirmed().lines[0].clone(); 101], ..confirmed() },
            Order { total_price_cents: None, ..confirmed() },
            Order { total_price_cents: Some(-1), ..confirmed() },
            Order { rejection_reason: Some("no".into()), ..confirmed() },
            Order { rejection_reason: Some("\0".into()), ..order(OrderStatus::Rejected, 2) },
            Order { total_price_cents: None, ..order(OrderStatus::AwaitingStock, 2) },
            Order { stock_release_pending: true, ..confirmed() },
            with_line(|line| line.quantity = 10_001),
            with_line(|line| line.product.as_mut().unwrap().unit_price_cents = -1),
            with_line(|line| line.product.as_mut().unwrap().name = "Ket\u{7}tle".into()),
        ];

        for order in forged {
            let payload = serde_json::to_vec(&OrderConfirmed { order: order.clone() }).unwrap();
            let error = OrderEvent::decode("shop.order.confirmed.v1", &payload).unwrap_err();
            assert!(matches!(error, crate::DecodeError::Invalid(_)), "{order:?}: {error}");
        }
    }

    #[test]
    fn statuses_are_snake_case_strings_on_the_wire() {
        let json = serde_json::to_value(order(OrderStatus::Confirmed, 2)).unwrap();

        assert_eq!(json["status"], "confirmed");
        assert_eq!(json["lines"][0]["product"]["unit_price_cents"], 2_499);
    }
}
