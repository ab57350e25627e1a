//! Order events, published on [`topics::ORDERS`](crate::topics::ORDERS) and keyed by order id. Every event
//! carries the whole order as it stands after the event.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{AggregateType, domain_event, event_family, invariants};

/// Where an order is in its life: placed orders wait as `pending` until validated, then become `confirmed`
/// (priced) or `rejected` (with a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
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
    /// The order service's rules: 1–100 lines of quantity 1 or more, prices and total of zero or more, a version
    /// of 1 or more.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::positive("order.version", self.version)?;
        if self.lines.is_empty() || self.lines.len() > 100 {
            return Err(format!("order.lines must hold 1 to 100 lines, not {}", self.lines.len()));
        }
        for line in &self.lines {
            invariants::positive("order.lines.quantity", line.quantity.into())?;
            if let Some(product) = &line.product {
                invariants::money("order.lines.product.unit_price_cents", product.unit_price_cents)?;
            }
        }
        if let Some(total) = self.total_price_cents {
            invariants::money("order.total_price_cents", total)?;
        }
        Ok(())
    }
}

/// `shop.order.placed.v1`: an order was placed; its status is `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order: Order,
}

/// `shop.order.confirmed.v1`: the order passed validation; its lines are priced and its total is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    pub order: Order,
}

/// `shop.order.rejected.v1`: the order failed validation; `order.rejection_reason` says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRejected {
    pub order: Order,
}

domain_event!(OrderPlaced, AggregateType::ORDER, "shop.order.placed" v 1, order);
domain_event!(OrderConfirmed, AggregateType::ORDER, "shop.order.confirmed" v 1, order);
domain_event!(OrderRejected, AggregateType::ORDER, "shop.order.rejected" v 1, order);

event_family! {
    /// Every event on the orders topic.
    pub enum OrderEvent {
        Placed(OrderPlaced),
        Confirmed(OrderConfirmed),
        Rejected(OrderRejected),
    }
}

impl OrderEvent {
    /// The order's state after the event, whichever event it is.
    pub fn order(&self) -> &Order {
        match self {
            Self::Placed(OrderPlaced { order })
            | Self::Confirmed(OrderConfirmed { order })
            | Self::Rejected(OrderRejected { order }) => order,
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
    fn statuses_are_snake_case_strings_on_the_wire() {
        let json = serde_json::to_value(order(OrderStatus::Confirmed, 2)).unwrap();

        assert_eq!(json["status"], "confirmed");
        assert_eq!(json["lines"][0]["product"]["unit_price_cents"], 2_499);
    }
}
