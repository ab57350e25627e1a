use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shop_events::{envelope::now, order as events};
use uuid::Uuid;

use super::{NewOrder, PlacedBy};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, not yet validated.
    Pending,
    /// Validated and priced.
    Confirmed,
    /// Refused, with a reason.
    Rejected,
}

impl OrderStatus {
    /// The name stored in the `orders.status` column and carried by events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(status: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Rejected].into_iter().find(|s| s.as_str() == status)
    }
}

/// A product's name, description and unit price, frozen when the order is priced: later catalog changes do not
/// change what was ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedProduct {
    pub name: String,
    pub description: String,
    pub unit_price_cents: i64,
}

/// A product and a quantity within an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: u32,
    /// Set when the order is priced.
    pub product: Option<PricedProduct>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub account_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    /// Set when the order is confirmed.
    pub total_price_cents: Option<i64>,
    /// Set when the order is rejected.
    pub rejection_reason: Option<String>,
    /// The aggregate version: 1 when placed, one more per transition.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who placed it, which limits the account it may name: kept for validation, not carried by its events.
    pub placed_by: PlacedBy,
}

/// What validation decides for a pending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The account and every product are known: price and confirm.
    Confirm,
    /// Something is unknown and the order may not wait any longer: reject, for this reason.
    Reject(String),
    /// Something is unknown, but the projections may still be catching up: look again later.
    Wait,
}

/// Why an order cannot make a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order is {}, not pending", .0.as_str())]
    NotPending(OrderStatus),
    #[error("unknown products: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    UnknownProducts(Vec<Uuid>),
    #[error("the order total does not fit in 64 bits of cents")]
    TotalTooLarge,
}

impl Order {
    /// Places an order: pending, unpriced, at version 1; returns it with the event that records it.
    pub fn place(new_order: NewOrder) -> (Self, events::OrderPlaced) {
        let at = now();
        let order = Self {
            id: Uuid::now_v7(),
            account_id: new_order.account_id(),
            status: OrderStatus::Pending,
            lines: new_order
                .lines()
                .iter()
                .map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity, product: None })
                .collect(),
            total_price_cents: None,
            rejection_reason: None,
            version: 1,
            created_at: at,
            updated_at: at,
            placed_by: new_order.placed_by().clone(),
        };
        let event = events::OrderPlaced { order: order.to_event_state() };
        (order, event)
    }

    /// Every product the order names (once each: lines are merged when the order is placed).
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|line| line.product_id).collect()
    }

    /// Prices every line from `catalog` and confirms the order. Fails, changing nothing, if the order is not
    /// pending or names a product `catalog` does not know.
    pub fn confirm(
        &mut self,
        catalog: &HashMap<Uuid, PricedProduct>,
    ) -> Result<events::OrderConfirmed, OrderError> {
        self.ensure_pending()?;
        let unknown: Vec<Uuid> =
            self.lines.iter().map(|l| l.product_id).filter(|id| !catalog.contains_key(id)).collect();
        if !unknown.is_empty() {
            return Err(OrderError::UnknownProducts(unknown));
        }
        let total = self.lines.iter().try_fold(0_i64, |total, line| {
            catalog[&line.product_id]
                .unit_price_cents
                .checked_mul(line.quantity.into())
                .and_then(|amount| total.checked_add(amount))
                .ok_or(OrderError::TotalTooLarge)
        })?;

        for line in &mut self.lines {
            line.product = Some(catalog[&line.product_id].clone());
        }
        self.total_price_cents = Some(total);
        self.advance(OrderStatus::Confirmed);
        Ok(events::OrderConfirmed { order: self.to_event_state() })
    }

    /// Rejects the order for `reason`. Fails, changing nothing, if the order is not pending.
    pub fn reject(&mut self, reason: impl Into<String>) -> Result<events::OrderRejected, OrderError> {
        self.ensure_pending()?;
        self.rejection_reason = Some(reason.into());
        self.advance(OrderStatus::Rejected);
        Ok(events::OrderRejected { order: self.to_event_state() })
    }

    /// Judges a pending order against what is known of its account and products. `account_known` says whether the
    /// order may name an account the directory holds: one whose owner the order's placer may not order for counts
    /// as unknown, and is rejected with the same reason, so a customer learns nothing of another's account. While
    /// `may_still_wait`, unknown names may just not have arrived yet (a lagging projection), so the verdict is to
    /// wait; after that, reject.
    pub fn verdict(
        &self,
        account_known: bool,
        catalog: &HashMap<Uuid, PricedProduct>,
        may_still_wait: bool,
    ) -> Verdict {
        let unknown_products: Vec<String> = self
            .lines
            .iter()
            .filter(|line| !catalog.contains_key(&line.product_id))
            .map(|line| line.product_id.to_string())
            .collect();
        if account_known && unknown_products.is_empty() {
            return Verdict::Confirm;
        }
        if may_still_wait {
            return Verdict::Wait;
        }
        let mut reasons = Vec::new();
        if !account_known {
            reasons.push(format!("unknown account {}", self.account_id));
        }
        if !unknown_products.is_empty() {
            reasons.push(format!("unknown products: {}", unknown_products.join(", ")));
        }
        Verdict::Reject(reasons.join("; "))
    }

    fn ensure_pending(&self) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::Pending => Ok(()),
            other => Err(OrderError::NotPending(other)),
        }
    }

    fn advance(&mut self, status: OrderStatus) {
        self.status = status;
        self.version += 1;
        self.updated_at = now();
    }

    /// The order as events carry it.
    pub fn to_event_state(&self) -> events::Order {
        events::Order {
            id: self.id,
            account_id: self.account_id,
            status: match self.status {
                OrderStatus::Pending => events::OrderStatus::Pending,
                OrderStatus::Confirmed => events::OrderStatus::Confirmed,
                OrderStatus::Rejected => events::OrderStatus::Rejected,
            },
            lines: self
                .lines
                .iter()
                .map(|line| events::OrderLine {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    product: line.product.as_ref().map(|p| events::PricedProduct {
                        name: p.name.clone(),
                        description: p.description.clone(),
                        unit_price_cents: p.unit_price_cents,
                    }),
                })
                .collect(),
            total_price_cents: self.total_price_cents,
            rejection_reason: self.rejection_reason.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(name: &str, unit_price_cents: i64) -> PricedProduct {
        PricedProduct { name: name.into(), description: String::new(), unit_price_cents }
    }

    fn placed(lines: &[(Uuid, u32)]) -> Order {
        let ids: Vec<String> = lines.iter().map(|(id, _)| id.to_string()).collect();
        let new_order = NewOrder::parse(
            &Uuid::now_v7().to_string(),
            ids.iter().zip(lines).map(|(id, (_, quantity))| (id.as_str(), *quantity)),
        )
        .unwrap();
        Order::place(new_order).0
    }

    #[test]
    fn a_placed_order_is_pending_and_unpriced_at_version_1() {
        let product = Uuid::now_v7();
        let new_order = NewOrder::parse(&Uuid::now_v7().to_string(), [(&*product.to_string(), 2)]).unwrap();

        let (order, event) = Order::place(new_order);

        assert_eq!((order.status, order.version, order.total_price_cents), (OrderStatus::Pending, 1, None));
        assert_eq!(event.order.status, events::OrderStatus::Pending);
        assert_eq!(event.order.lines[0].product, None);
    }

    #[test]
    fn confirming_prices_every_line_and_sums_the_total() {
        // Given
        let (kettle, mug) = (Uuid::now_v7(), Uuid::now_v7());
        let mut order = placed(&[(kettle, 2), (mug, 3)]);
        let catalog = HashMap::from([(kettle, priced("Kettle", 2_499)), (mug, priced("Mug", 899))]);

        // When
        let event = order.confirm(&catalog).unwrap();

        // Then
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.version, 2);
        assert_eq!(order.total_price_cents, Some(2 * 2_499 + 3 * 899));
        assert_eq!(order.lines[1].product.as_ref().unwrap().name, "Mug");
        assert_eq!(event.order, order.to_event_state());
    }

    #[test]
    fn confirming_with_an_unknown_product_names_it_and_changes_nothing() {
        let (kettle, ghost) = (Uuid::now_v7(), Uuid::now_v7());
        let mut order = placed(&[(kettle, 1), (ghost, 1)]);
        let before = order.clone();

        let error = order.confirm(&HashMap::from([(kettle, priced("Kettle", 1))])).unwrap_err();

        assert_eq!(error, OrderError::UnknownProducts(vec![ghost]));
        assert_eq!(order, before);
    }

    #[test]
    fn a_total_that_would_overflow_is_refused() {
        let product = Uuid::now_v7();
        let mut order = placed(&[(product, 10)]);

        let error = order.confirm(&HashMap::from([(product, priced("Gold", i64::MAX / 2))])).unwrap_err();

        assert_eq!(error, OrderError::TotalTooLarge);
    }

    #[test]
    fn a_fully_known_order_is_confirmed_and_an_unknown_one_waits_then_is_rejected_with_every_reason() {
        let (kettle, ghost) = (Uuid::now_v7(), Uuid::now_v7());
        let order = placed(&[(kettle, 1), (ghost, 1)]);
        let known = HashMap::from([(kettle, priced("Kettle", 1)), (ghost, priced("Ghost", 1))]);
        let partial = HashMap::from([(kettle, priced("Kettle", 1))]);

        assert_eq!(order.verdict(true, &known, true), Verdict::Confirm);
        assert_eq!(order.verdict(true, &partial, true), Verdict::Wait);
        assert_eq!(
            order.verdict(true, &partial, false),
            Verdict::Reject(format!("unknown products: {ghost}"))
        );
        assert_eq!(
            order.verdict(false, &partial, false),
            Verdict::Reject(format!("unknown account {}; unknown products: {ghost}", order.account_id))
        );
    }

    #[test]
    fn rejecting_records_the_reason_and_only_pending_orders_move() {
        let product = Uuid::now_v7();
        let mut order = placed(&[(product, 1)]);

        let event = order.reject("unknown account").unwrap();

        assert_eq!(order.status, OrderStatus::Rejected);
        assert_eq!(event.order.rejection_reason.as_deref(), Some("unknown account"));
        assert_eq!(order.reject("again"), Err(OrderError::NotPending(OrderStatus::Rejected)));
        assert_eq!(
            order.confirm(&HashMap::from([(product, priced("Kettle", 1))])),
            Err(OrderError::NotPending(OrderStatus::Rejected))
        );
    }
}
