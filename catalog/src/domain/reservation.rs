//! Stock reservations: the catalog's side of the order saga. One reservation per order; it decides once, all or
//! none, and moves only forward (reserved or rejected, then released), so repeated requests change nothing and stock
//! never comes back twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use shop_events::{
    catalog::ProductUpdated,
    envelope::now,
    stock::{self as events, StockRejected, StockReleased, StockReserved},
};
use shop_platform::{FieldViolation, ids::parse_id};
use uuid::Uuid;

use super::{Product, ProductChange, Stock};

/// A product and a number of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// A line the catalog could not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    pub product_id: Uuid,
    pub requested: u32,
    /// Units available when the catalog decided; `None` when it does not know the product.
    pub available: Option<i64>,
}

/// What an order asks the catalog to hold: one to [`StockRequest::MAX_LINES`] lines of one unit or more, one per
/// product, kept in product id order (the order products are locked in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRequest {
    lines: Vec<StockLine>,
}

impl StockRequest {
    /// As many lines as an order holds.
    pub const MAX_LINES: usize = 100;

    /// Validates lines as a caller sent them (product id, quantity), reporting every problem at once, named as
    /// the `lines` field of the request. More than [`Self::MAX_LINES`] lines are refused before any is read.
    pub fn parse<'a>(
        lines: impl ExactSizeIterator<Item = (&'a str, u32)>,
    ) -> Result<Self, Vec<FieldViolation>> {
        if lines.len() > Self::MAX_LINES {
            return Err(vec![FieldViolation::new(
                "lines",
                format!("must hold at most {} lines", Self::MAX_LINES),
            )]);
        }
        let mut violations = Vec::new();
        let mut first_line_of: HashMap<Uuid, usize> = HashMap::new();
        let mut parsed = Vec::with_capacity(lines.len());
        for (i, (product_id, quantity)) in lines.enumerate() {
            if quantity == 0 {
                violations.push(FieldViolation::new(format!("lines[{i}].quantity"), "must be at least 1"));
            }
            match parse_id(&format!("lines[{i}].product_id"), product_id) {
                Err(violation) => violations.push(violation),
                Ok(product_id) => match first_line_of.get(&product_id) {
                    Some(first) => violations.push(FieldViolation::new(
                        format!("lines[{i}].product_id"),
                        format!("names the same product as lines[{first}]; one line per product"),
                    )),
                    None => {
                        first_line_of.insert(product_id, i);
                        parsed.push(StockLine { product_id, quantity });
                    }
                },
            }
        }
        if parsed.is_empty() && violations.is_empty() {
            violations.push(FieldViolation::new("lines", "must hold at least one line"));
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        parsed.sort_by_key(|line| line.product_id);
        Ok(Self { lines: parsed })
    }

    /// The request an order's own lines make, adding up lines that name the same product (an order merges them
    /// already; this does not rely on it). Refused, as [`parse`](Self::parse) would, when the order breaks the
    /// rules an order keeps.
    pub fn merging(lines: impl IntoIterator<Item = (Uuid, u32)>) -> Result<Self, Vec<FieldViolation>> {
        let mut merged: BTreeMap<Uuid, u32> = BTreeMap::new();
        for (product_id, quantity) in lines {
            let total = merged.entry(product_id).or_default();
            *total = total.saturating_add(quantity);
        }
        let ids: Vec<String> = merged.keys().map(Uuid::to_string).collect();
        Self::parse(ids.iter().map(String::as_str).zip(merged.into_values()))
    }

    /// The lines, in product id order.
    pub fn lines(&self) -> &[StockLine] {
        &self.lines
    }

    /// The products named, in id order.
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|line| line.product_id).collect()
    }
}

/// Where a reservation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Every line is held.
    Reserved,
    /// Some line could not be held, so none is.
    Rejected,
    /// Whatever was held went back; nothing is held for the order again.
    Released,
}

impl ReservationStatus {
    /// The name stored in the `stock_reservations.status` column and carried by events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Rejected => "rejected",
            Self::Released => "released",
        }
    }

    pub fn parse(status: &str) -> Option<Self> {
        [Self::Reserved, Self::Rejected, Self::Released].into_iter().find(|s| s.as_str() == status)
    }
}

/// The catalog's reservation for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub order_id: Uuid,
    pub status: ReservationStatus,
    /// What the order asked for, in product id order; empty when a release came before any request.
    pub lines: Vec<StockLine>,
    /// Every line short of stock, exactly when rejected.
    pub shortages: Vec<Shortage>,
    /// 1 when decided, one more per change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the catalog decides for an order's first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every line is held: `products` are those whose stock moved, each with its event (products that do not track
    /// their stock do not move).
    Reserved { reservation: Reservation, event: StockReserved, products: Vec<(Product, ProductUpdated)> },
    /// Some line is short, so nothing is held and no product changes.
    Rejected { reservation: Reservation, event: StockRejected },
}

/// What a release changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The reservation is released: `products` got back what it held (none, if it held nothing), each with its
    /// event.
    Released { event: StockReleased, products: Vec<(Product, ProductUpdated)> },
    /// It was released already: nothing changes, nothing is recorded.
    AlreadyReleased,
}

impl Reservation {
    /// Decides an order's request, all or none, against `products`: the request's products that exist, locked by
    /// the caller. A product missing from them is unknown, which is a shortage; one that does not track its stock
    /// always has enough.
    pub fn decide(order_id: Uuid, request: &StockRequest, products: Vec<Product>) -> Decision {
        let mut products: HashMap<Uuid, Product> = products.into_iter().map(|p| (p.id, p)).collect();
        let mut shortages = Vec::new();
        let mut moved = Vec::new();
        for line in request.lines() {
            let Some(product) = products.get_mut(&line.product_id) else {
                shortages.push(Shortage {
                    product_id: line.product_id,
                    requested: line.quantity,
                    available: None,
                });
                continue;
            };
            match product.hold_stock(line.quantity) {
                Ok(ProductChange::Updated(updated)) => moved.push(updated),
                Ok(ProductChange::Unchanged) => {}
                // Holding refuses only for want of stock.
                Err(_) => shortages.push(Shortage {
                    product_id: line.product_id,
                    requested: line.quantity,
                    available: product.stock.map(Stock::available),
                }),
            }
        }
        let at = now();
        let mut reservation = Self {
            order_id,
            status: ReservationStatus::Reserved,
            lines: request.lines().to_vec(),
            shortages: Vec::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        if !shortages.is_empty() {
            // The products held above are dropped unsaved: a rejection moves no stock.
            reservation.status = ReservationStatus::Rejected;
            reservation.shortages = shortages;
            let event = StockRejected { reservation: reservation.to_event_state() };
            return Decision::Rejected { reservation, event };
        }
        let products = moved
            .into_iter()
            .map(|updated| (products.remove(&updated.product.id).expect("a product that moved"), updated))
            .collect();
        let event = StockReserved { reservation: reservation.to_event_state() };
        Decision::Reserved { reservation, event, products }
    }

    /// The reservation a release leaves when it comes before any request for the order: released, holding
    /// nothing, so that a request arriving later holds nothing either.
    pub fn released_unrequested(order_id: Uuid) -> (Self, StockReleased) {
        let at = now();
        let reservation = Self {
            order_id,
            status: ReservationStatus::Released,
            lines: Vec::new(),
            shortages: Vec::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        let event = StockReleased { reservation: reservation.to_event_state() };
        (reservation, event)
    }

    /// Releases the reservation: a reserved one gives back exactly what it held to `products` (the products of
    /// its lines, locked by the caller); a rejected one gives back nothing; a released one does not change.
    pub fn release(&mut self, products: Vec<Product>) -> Release {
        let given_back = match self.status {
            ReservationStatus::Released => return Release::AlreadyReleased,
            ReservationStatus::Rejected => Vec::new(),
            ReservationStatus::Reserved => {
                let mut products: HashMap<Uuid, Product> = products.into_iter().map(|p| (p.id, p)).collect();
                self.lines
                    .iter()
                    .filter_map(|line| {
                        let mut product = products.remove(&line.product_id)?;
                        match product.give_back_stock(line.quantity) {
                            ProductChange::Updated(updated) => Some((product, updated)),
                            ProductChange::Unchanged => None,
                        }
                    })
                    .collect()
            }
        };
        self.status = ReservationStatus::Released;
        self.shortages.clear();
        self.version += 1;
        self.updated_at = now();
        Release::Released {
            event: StockReleased { reservation: self.to_event_state() },
            products: given_back,
        }
    }

    /// Whether the lines are held now: exactly while reserved.
    pub fn held(&self) -> bool {
        self.status == ReservationStatus::Reserved
    }

    /// The reservation as events carry it.
    pub fn to_event_state(&self) -> events::Reservation {
        events::Reservation {
            order_id: self.order_id,
            status: match self.status {
                ReservationStatus::Reserved => events::ReservationStatus::Reserved,
                ReservationStatus::Rejected => events::ReservationStatus::Rejected,
                ReservationStatus::Released => events::ReservationStatus::Released,
            },
            lines: self
                .lines
                .iter()
                .map(|line| events::StockLine { product_id: line.product_id, quantity: line.quantity })
                .collect(),
            held: self.held(),
            shortages: self
                .shortages
                .iter()
                .map(|s| events::Shortage {
                    product_id: s.product_id,
                    requested: s.requested,
                    available: s.available,
                })
                .collect(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProductDetails;

    fn product(stock: Option<i64>) -> Product {
        let details = ProductDetails::parse("Kettle", "", 2_499).unwrap();
        Product::create(details, stock.map(|units| Stock::parse("stock", units).unwrap())).0
    }

    fn request(lines: &[(Uuid, u32)]) -> StockRequest {
        StockRequest::merging(lines.iter().copied()).unwrap()
    }

    fn reserved(order_id: Uuid, lines: &[(&Product, u32)]) -> (Reservation, Vec<Product>) {
        let request = request(&lines.iter().map(|(p, q)| (p.id, *q)).collect::<Vec<_>>());
        let products = lines.iter().map(|(p, _)| (*p).clone()).collect();
        let Decision::Reserved { reservation, products, .. } =
            Reservation::decide(order_id, &request, products)
        else {
            panic!("expected a reservation")
        };
        (reservation, products.into_iter().map(|(product, _)| product).collect())
    }

    fn stock_of(products: &[(Product, ProductUpdated)], id: Uuid) -> Option<i64> {
        products.iter().find(|(p, _)| p.id == id).and_then(|(p, _)| p.stock.map(Stock::available))
    }

    #[test]
    fn a_request_holds_every_line_when_every_product_has_enough() {
        // Given
        let (kettle, mug, sticker) = (product(Some(5)), product(Some(1)), product(None));
        let order_id = Uuid::now_v7();

        // When
        let decision = Reservation::decide(
            order_id,
            &request(&[(kettle.id, 2), (mug.id, 1), (sticker.id, 1_000)]),
            vec![kettle.clone(), mug.clone(), sticker.clone()],
        );

        // Then: the tracked products moved, each to its next version; the untracked one did not.
        let Decision::Reserved { reservation, event, products } = decision else {
            panic!("expected reserved")
        };
        assert_eq!(
            (reservation.status, reservation.version, reservation.held()),
            (ReservationStatus::Reserved, 1, true)
        );
        assert_eq!(reservation.lines.len(), 3);
        assert_eq!(products.len(), 2);
        assert_eq!(stock_of(&products, kettle.id), Some(3));
        assert_eq!(stock_of(&products, mug.id), Some(0));
        assert!(products.iter().all(|(p, updated)| p.version == 2 && updated.product == p.to_event_state()));
        assert_eq!(event.reservation, reservation.to_event_state());
        assert!(event.reservation.check_invariants().is_ok());
    }

    #[test]
    fn one_short_line_rejects_the_whole_request_and_names_every_shortage() {
        // Given
        let (kettle, mug) = (product(Some(5)), product(Some(1)));
        let unknown = Uuid::now_v7();

        // When
        let decision = Reservation::decide(
            Uuid::now_v7(),
            &request(&[(kettle.id, 2), (mug.id, 2), (unknown, 1)]),
            vec![kettle.clone(), mug.clone()],
        );

        // Then
        let Decision::Rejected { reservation, event } = decision else { panic!("expected rejected") };
        assert_eq!((reservation.status, reservation.held()), (ReservationStatus::Rejected, false));
        let mut shortages = reservation.shortages.clone();
        shortages.sort_by_key(|s| s.product_id);
        let mut expected = vec![
            Shortage { product_id: mug.id, requested: 2, available: Some(1) },
            Shortage { product_id: unknown, requested: 1, available: None },
        ];
        expected.sort_by_key(|s| s.product_id);
        assert_eq!(shortages, expected);
        assert!(event.reservation.check_invariants().is_ok());
    }

    #[test]
    fn releasing_a_reservation_gives_back_exactly_what_it_held_once() {
        // Given
        let (kettle, sticker) = (product(Some(5)), product(None));
        let (mut reservation, held) = reserved(Uuid::now_v7(), &[(&kettle, 2), (&sticker, 3)]);
        let mut locked = held.clone();
        locked.push(sticker.clone());

        // When
        let first = reservation.release(locked.clone());
        let again = reservation.release(locked);

        // Then
        let Release::Released { event, products } = first else { panic!("expected released") };
        assert_eq!(stock_of(&products, kettle.id), Some(5));
        assert_eq!(products.len(), 1, "the untracked product does not move");
        assert_eq!(
            (reservation.status, reservation.version, reservation.held()),
            (ReservationStatus::Released, 2, false)
        );
        assert_eq!(event.reservation, reservation.to_event_state());
        assert!(event.reservation.check_invariants().is_ok());
        assert_eq!(again, Release::AlreadyReleased);
        assert_eq!(reservation.version, 2);
    }

    #[test]
    fn releasing_a_rejected_reservation_gives_back_nothing() {
        // Given
        let kettle = product(Some(1));
        let Decision::Rejected { mut reservation, .. } =
            Reservation::decide(Uuid::now_v7(), &request(&[(kettle.id, 2)]), vec![kettle.clone()])
        else {
            panic!("expected rejected")
        };

        // When
        let release = reservation.release(vec![kettle]);

        // Then
        let Release::Released { event, products } = release else { panic!("expected released") };
        assert!(products.is_empty());
        assert!(reservation.shortages.is_empty());
        assert!(event.reservation.check_invariants().is_ok());
    }

    #[test]
    fn a_release_before_any_request_leaves_a_released_reservation_holding_nothing() {
        let order_id = Uuid::now_v7();

        let (reservation, event) = Reservation::released_unrequested(order_id);

        assert_eq!((reservation.status, reservation.version), (ReservationStatus::Released, 1));
        assert!(reservation.lines.is_empty() && !reservation.held());
        assert_eq!(event.reservation.order_id, order_id);
        assert!(event.reservation.check_invariants().is_ok());
    }

    #[test]
    fn a_request_is_checked_whole_and_kept_in_product_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (a_text, b_text) = (a.to_string(), b.to_string());

        let parsed = StockRequest::parse([(b_text.as_str(), 1), (a_text.as_str(), 2)].into_iter()).unwrap();
        let violations =
            StockRequest::parse([("nope", 0), (a_text.as_str(), 1), (a_text.as_str(), 1)].into_iter())
                .unwrap_err();
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();

        assert_eq!(parsed.product_ids(), [a, b]);
        assert_eq!(fields, ["lines[0].quantity", "lines[0].product_id", "lines[2].product_id"]);
        assert_eq!(StockRequest::parse(std::iter::empty()).unwrap_err()[0].field, "lines");
        let too_many = vec![a_text.as_str(); StockRequest::MAX_LINES + 1];
        assert_eq!(StockRequest::parse(too_many.into_iter().map(|id| (id, 1))).unwrap_err().len(), 1);
    }

    #[test]
    fn an_orders_lines_for_one_product_are_added_up() {
        let kettle = Uuid::now_v7();

        let request = StockRequest::merging([(kettle, 2), (kettle, 3)]).unwrap();

        assert_eq!(request.lines(), [StockLine { product_id: kettle, quantity: 5 }]);
    }
}
