use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shop_events::{
    envelope::now,
    order::{self as events, OrderEvent, OrderStep, OrderStepKind},
};
use uuid::Uuid;

use super::{NewOrder, PlacedBy};

/// Where an order is in its saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, not yet validated.
    Pending,
    /// Validated and priced; it names a product that tracks its stock, and waits for the catalog's reservation.
    AwaitingStock,
    /// Validated, priced, and its stock (if tracked) held.
    Confirmed,
    /// Refused, with a reason.
    Rejected,
    /// Cancelled before it was final.
    Cancelled,
}

impl OrderStatus {
    const ALL: [Self; 5] =
        [Self::Pending, Self::AwaitingStock, Self::Confirmed, Self::Rejected, Self::Cancelled];

    /// The name stored in the `orders.status` column and carried by events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingStock => "awaiting_stock",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(status: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == status)
    }

    /// Whether the order can no longer change status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Rejected | Self::Cancelled)
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

/// A product as the directory knows it: what an order is priced from, and whether the catalog tracks its stock
/// (then an order naming it waits for the catalog to reserve it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    pub priced: PricedProduct,
    pub tracks_stock: bool,
}

/// A line the catalog could not hold: `available` units of the `requested` (`None`: the catalog does not know the
/// product).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub product_id: Uuid,
    pub requested: u32,
    pub available: Option<i64>,
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
    /// Set while the order awaits stock and once it is confirmed.
    pub total_price_cents: Option<i64>,
    /// Set when the order is rejected.
    pub rejection_reason: Option<String>,
    /// The aggregate version: 1 when placed, one more per transition.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who placed it, which limits the account it may name: kept for validation, not carried by its events.
    pub placed_by: PlacedBy,
    /// Every step of its saga, oldest first.
    pub history: Vec<OrderStep>,
    /// True once the order ended (rejected or cancelled) while the catalog may hold stock for it, until the
    /// catalog says it released it.
    pub stock_release_pending: bool,
}

/// What validation decides for a pending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The account and every product are known: price, and confirm or ask for stock.
    Accept,
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
    #[error("the order is {}, not awaiting stock", .0.as_str())]
    NotAwaitingStock(OrderStatus),
    #[error("the order is {} already; only pending orders and orders awaiting stock can change", .0.as_str())]
    Final(OrderStatus),
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
            history: vec![OrderStep { step: OrderStepKind::Placed, at, detail: None }],
            stock_release_pending: false,
        };
        let event = events::OrderPlaced { order: order.to_event_state() };
        (order, event)
    }

    /// Every product the order names (once each: lines are merged when the order is placed).
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|line| line.product_id).collect()
    }

    /// Prices every line from `catalog`, then confirms the order — or, when a line's product tracks its stock,
    /// moves it to awaiting stock, for the catalog to reserve. Fails, changing nothing, if the order is not pending
    /// or names a product `catalog` does not know.
    pub fn accept(&mut self, catalog: &HashMap<Uuid, CatalogProduct>) -> Result<OrderEvent, OrderError> {
        self.ensure(OrderStatus::Pending, OrderError::NotPending)?;
        let unknown: Vec<Uuid> =
            self.lines.iter().map(|l| l.product_id).filter(|id| !catalog.contains_key(id)).collect();
        if !unknown.is_empty() {
            return Err(OrderError::UnknownProducts(unknown));
        }
        let total = self.lines.iter().try_fold(0_i64, |total, line| {
            catalog[&line.product_id]
                .priced
                .unit_price_cents
                .checked_mul(line.quantity.into())
                .and_then(|amount| total.checked_add(amount))
                .ok_or(OrderError::TotalTooLarge)
        })?;

        for line in &mut self.lines {
            line.product = Some(catalog[&line.product_id].priced.clone());
        }
        self.total_price_cents = Some(total);
        if self.lines.iter().any(|line| catalog[&line.product_id].tracks_stock) {
            self.advance(OrderStatus::AwaitingStock, OrderStepKind::AwaitingStock, None);
            return Ok(OrderEvent::AwaitingStock(events::OrderAwaitingStock {
                order: self.to_event_state(),
            }));
        }
        self.advance(OrderStatus::Confirmed, OrderStepKind::Confirmed, None);
        Ok(OrderEvent::Confirmed(events::OrderConfirmed { order: self.to_event_state() }))
    }

    /// The catalog holds every line: confirms the order. Fails, changing nothing, unless it awaits stock.
    pub fn stock_reserved(&mut self) -> Result<OrderEvent, OrderError> {
        self.ensure(OrderStatus::AwaitingStock, OrderError::NotAwaitingStock)?;
        self.record(OrderStepKind::StockReserved, None);
        self.advance(OrderStatus::Confirmed, OrderStepKind::Confirmed, None);
        Ok(OrderEvent::Confirmed(events::OrderConfirmed { order: self.to_event_state() }))
    }

    /// The catalog could hold not every line, so holds none: rejects the order, naming what was short. Nothing is
    /// to be released. Fails, changing nothing, unless it awaits stock.
    pub fn stock_rejected(&mut self, shortages: &[Shortage]) -> Result<OrderEvent, OrderError> {
        self.ensure(OrderStatus::AwaitingStock, OrderError::NotAwaitingStock)?;
        let short = shortages
            .iter()
            .map(|shortage| match shortage.available {
                Some(available) => {
                    format!("{} ({} wanted, {available} available)", shortage.product_id, shortage.requested)
                }
                None => format!("{} (unknown to the catalog)", shortage.product_id),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let reason = format!("out of stock: {short}");
        self.record(OrderStepKind::StockRejected, Some(short));
        self.end(OrderStatus::Rejected, Some(reason), false);
        Ok(OrderEvent::Rejected(events::OrderRejected { order: self.to_event_state() }))
    }

    /// Rejects the order for `reason`. One that awaited stock owes a release: the catalog may hold stock for it.
    /// Fails, changing nothing, once the order is final.
    pub fn reject(&mut self, reason: impl Into<String>) -> Result<OrderEvent, OrderError> {
        self.ensure_open()?;
        let release = self.status == OrderStatus::AwaitingStock;
        self.end(OrderStatus::Rejected, Some(reason.into()), release);
        Ok(OrderEvent::Rejected(events::OrderRejected { order: self.to_event_state() }))
    }

    /// Cancels the order (`by` says who, in words). One that awaited stock owes a release. Fails, changing
    /// nothing, once the order is final.
    pub fn cancel(&mut self, by: &str) -> Result<OrderEvent, OrderError> {
        self.ensure_open()?;
        let release = self.status == OrderStatus::AwaitingStock;
        self.end(OrderStatus::Cancelled, Some(format!("cancelled by {by}")), release);
        Ok(OrderEvent::Cancelled(events::OrderCancelled { order: self.to_event_state() }))
    }

    /// The catalog released whatever it held for the order: the compensation completed. `None` when no release
    /// was owed (a repeated answer, or one for an order that never asked): nothing changes.
    pub fn stock_released(&mut self) -> Option<OrderEvent> {
        if !self.stock_release_pending {
            return None;
        }
        self.stock_release_pending = false;
        self.version += 1;
        self.updated_at = now();
        self.record(OrderStepKind::StockReleased, None);
        Some(OrderEvent::StockReleased(events::OrderStockReleased { order: self.to_event_state() }))
    }

    /// Judges a pending order against what is known of its account and products. `account_known` says whether the
    /// order may name an account the directory holds: one whose owner the order's placer may not order for counts
    /// as unknown, and is rejected with the same reason, so a customer learns nothing of another's account. While
    /// `may_still_wait`, unknown names may just not have arrived yet (a lagging projection), so the verdict is to
    /// wait; after that, reject.
    pub fn verdict(
        &self,
        account_known: bool,
        catalog: &HashMap<Uuid, CatalogProduct>,
        may_still_wait: bool,
    ) -> Verdict {
        let unknown_products: Vec<String> = self
            .lines
            .iter()
            .filter(|line| !catalog.contains_key(&line.product_id))
            .map(|line| line.product_id.to_string())
            .collect();
        if account_known && unknown_products.is_empty() {
            return Verdict::Accept;
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

    fn ensure(&self, status: OrderStatus, error: fn(OrderStatus) -> OrderError) -> Result<(), OrderError> {
        if self.status == status { Ok(()) } else { Err(error(self.status)) }
    }

    fn ensure_open(&self) -> Result<(), OrderError> {
        if self.status.is_final() { Err(OrderError::Final(self.status)) } else { Ok(()) }
    }

    /// Ends the order as `status`: an order that does not go ahead has no total to pay.
    fn end(&mut self, status: OrderStatus, detail: Option<String>, release_owed: bool) {
        let step = match status {
            OrderStatus::Cancelled => OrderStepKind::Cancelled,
            _ => OrderStepKind::Rejected,
        };
        if status == OrderStatus::Rejected {
            self.rejection_reason = detail.clone();
        }
        self.total_price_cents = None;
        self.stock_release_pending = release_owed;
        self.advance(status, step, detail);
    }

    fn advance(&mut self, status: OrderStatus, step: OrderStepKind, detail: Option<String>) {
        self.status = status;
        self.version += 1;
        self.updated_at = now();
        self.history.push(OrderStep { step, at: self.updated_at, detail });
    }

    fn record(&mut self, step: OrderStepKind, detail: Option<String>) {
        self.history.push(OrderStep { step, at: now(), detail });
    }

    /// The order as events carry it.
    pub fn to_event_state(&self) -> events::Order {
        events::Order {
            id: self.id,
            account_id: self.account_id,
            status: match self.status {
                OrderStatus::Pending => events::OrderStatus::Pending,
                OrderStatus::AwaitingStock => events::OrderStatus::AwaitingStock,
                OrderStatus::Confirmed => events::OrderStatus::Confirmed,
                OrderStatus::Rejected => events::OrderStatus::Rejected,
                OrderStatus::Cancelled => events::OrderStatus::Cancelled,
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
            history: self.history.clone(),
            stock_release_pending: self.stock_release_pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(name: &str, unit_price_cents: i64) -> CatalogProduct {
        CatalogProduct {
            priced: PricedProduct { name: name.into(), description: String::new(), unit_price_cents },
            tracks_stock: false,
        }
    }

    fn stocked(name: &str, unit_price_cents: i64) -> CatalogProduct {
        CatalogProduct { tracks_stock: true, ..priced(name, unit_price_cents) }
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

    fn steps(order: &Order) -> Vec<OrderStepKind> {
        order.history.iter().map(|step| step.step).collect()
    }

    /// An order for one stocked kettle, awaiting the catalog's answer.
    fn awaiting_stock() -> (Order, Uuid) {
        let kettle = Uuid::now_v7();
        let mut order = placed(&[(kettle, 1)]);
        order.accept(&HashMap::from([(kettle, stocked("Kettle", 2_499))])).unwrap();
        (order, kettle)
    }

    #[test]
    fn a_placed_order_is_pending_and_unpriced_at_version_1() {
        let product = Uuid::now_v7();
        let new_order = NewOrder::parse(&Uuid::now_v7().to_string(), [(&*product.to_string(), 2)]).unwrap();

        let (order, event) = Order::place(new_order);

        assert_eq!((order.status, order.version, order.total_price_cents), (OrderStatus::Pending, 1, None));
        assert_eq!(event.order.status, events::OrderStatus::Pending);
        assert_eq!(event.order.lines[0].product, None);
        assert_eq!(steps(&order), [OrderStepKind::Placed]);
    }

    #[test]
    fn accepting_prices_every_line_sums_the_total_and_confirms_when_no_product_tracks_stock() {
        // Given
        let (kettle, mug) = (Uuid::now_v7(), Uuid::now_v7());
        let mut order = placed(&[(kettle, 2), (mug, 3)]);
        let catalog = HashMap::from([(kettle, priced("Kettle", 2_499)), (mug, priced("Mug", 899))]);

        // When
        let event = order.accept(&catalog).unwrap();

        // Then
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.version, 2);
        assert_eq!(order.total_price_cents, Some(2 * 2_499 + 3 * 899));
        assert_eq!(order.lines[1].product.as_ref().unwrap().name, "Mug");
        assert_eq!(event, OrderEvent::Confirmed(events::OrderConfirmed { order: order.to_event_state() }));
        assert_eq!(steps(&order), [OrderStepKind::Placed, OrderStepKind::Confirmed]);
    }

    #[test]
    fn an_order_naming_a_stocked_product_is_priced_and_awaits_stock_then_is_confirmed_once_reserved() {
        let (kettle, mug) = (Uuid::now_v7(), Uuid::now_v7());
        let mut order = placed(&[(kettle, 1), (mug, 1)]);

        let awaiting =
            order.accept(&HashMap::from([(kettle, stocked("Kettle", 2_499)), (mug, priced("Mug", 1))]));

        assert!(matches!(awaiting, Ok(OrderEvent::AwaitingStock(_))));
        assert_eq!((order.status, order.total_price_cents), (OrderStatus::AwaitingStock, Some(2_500)));
        let confirmed = order.stock_reserved().unwrap();
        assert!(matches!(confirmed, OrderEvent::Confirmed(_)));
        assert_eq!((order.status, order.version), (OrderStatus::Confirmed, 3));
        assert_eq!(
            steps(&order),
            [
                OrderStepKind::Placed,
                OrderStepKind::AwaitingStock,
                OrderStepKind::StockReserved,
                OrderStepKind::Confirmed
            ]
        );
        assert_eq!(order.stock_reserved(), Err(OrderError::NotAwaitingStock(OrderStatus::Confirmed)));
    }

    #[test]
    fn a_stock_rejection_names_what_was_short_and_owes_no_release() {
        let (mut order, kettle) = awaiting_stock();
        let ghost = Uuid::now_v7();
        let shortages = [
            Shortage { product_id: kettle, requested: 1, available: Some(0) },
            Shortage { product_id: ghost, requested: 2, available: None },
        ];

        let event = order.stock_rejected(&shortages).unwrap();

        assert!(matches!(event, OrderEvent::Rejected(_)));
        assert_eq!(order.status, OrderStatus::Rejected);
        assert_eq!(
            order.rejection_reason,
            Some(format!("out of stock: {kettle} (1 wanted, 0 available), {ghost} (unknown to the catalog)"))
        );
        assert_eq!((order.total_price_cents, order.stock_release_pending), (None, false));
        assert_eq!(order.stock_released(), None, "nothing to release");
    }

    #[test]
    fn rejecting_or_cancelling_an_order_awaiting_stock_owes_a_release_which_completes_once() {
        for end in [|o: &mut Order| o.reject("timed out"), |o: &mut Order| o.cancel("the customer")] {
            // Given
            let (mut order, _) = awaiting_stock();

            // When
            end(&mut order).unwrap();

            // Then
            assert!(order.status.is_final());
            assert_eq!((order.total_price_cents, order.stock_release_pending), (None, true));
            let released = order.stock_released().expect("a release was owed");
            assert!(matches!(released, OrderEvent::StockReleased(_)));
            assert!(!order.stock_release_pending);
            assert_eq!(order.history.last().unwrap().step, OrderStepKind::StockReleased);
            assert_eq!((order.stock_released(), order.version), (None, 4), "released once");
        }
    }

    #[test]
    fn a_pending_order_is_cancelled_without_owing_a_release_and_a_final_order_is_not_cancelled() {
        let mut order = placed(&[(Uuid::now_v7(), 1)]);

        order.cancel("staff").unwrap();

        assert_eq!((order.status, order.stock_release_pending), (OrderStatus::Cancelled, false));
        assert_eq!(order.history.last().unwrap().detail.as_deref(), Some("cancelled by staff"));
        assert_eq!(order.cancel("staff"), Err(OrderError::Final(OrderStatus::Cancelled)));
        let (mut confirmed, _) = awaiting_stock();
        confirmed.stock_reserved().unwrap();
        assert_eq!(confirmed.cancel("the customer"), Err(OrderError::Final(OrderStatus::Confirmed)));
    }

    #[test]
    fn accepting_with_an_unknown_product_names_it_and_changes_nothing() {
        let (kettle, ghost) = (Uuid::now_v7(), Uuid::now_v7());
        let mut order = placed(&[(kettle, 1), (ghost, 1)]);
        let before = order.clone();

        let error = order.accept(&HashMap::from([(kettle, priced("Kettle", 1))])).unwrap_err();

        assert_eq!(error, OrderError::UnknownProducts(vec![ghost]));
        assert_eq!(order, before);
    }

    #[test]
    fn a_total_that_would_overflow_is_refused() {
        let product = Uuid::now_v7();
        let mut order = placed(&[(product, 10)]);

        let error = order.accept(&HashMap::from([(product, priced("Gold", i64::MAX / 2))])).unwrap_err();

        assert_eq!(error, OrderError::TotalTooLarge);
    }

    #[test]
    fn a_fully_known_order_is_accepted_and_an_unknown_one_waits_then_is_rejected_with_every_reason() {
        let (kettle, ghost) = (Uuid::now_v7(), Uuid::now_v7());
        let order = placed(&[(kettle, 1), (ghost, 1)]);
        let known = HashMap::from([(kettle, priced("Kettle", 1)), (ghost, priced("Ghost", 1))]);
        let partial = HashMap::from([(kettle, priced("Kettle", 1))]);

        assert_eq!(order.verdict(true, &known, true), Verdict::Accept);
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
    fn rejecting_records_the_reason_and_only_open_orders_move() {
        let product = Uuid::now_v7();
        let mut order = placed(&[(product, 1)]);

        let event = order.reject("unknown account").unwrap();

        assert_eq!(order.status, OrderStatus::Rejected);
        assert_eq!(event.order().rejection_reason.as_deref(), Some("unknown account"));
        assert!(!order.stock_release_pending, "a pending order asked for no stock");
        assert_eq!(order.reject("again"), Err(OrderError::Final(OrderStatus::Rejected)));
        assert_eq!(
            order.accept(&HashMap::from([(product, priced("Kettle", 1))])),
            Err(OrderError::NotPending(OrderStatus::Rejected))
        );
    }
}
