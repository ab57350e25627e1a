use chrono::{DateTime, Utc};
use shop_events::{catalog as events, envelope::now};
use uuid::Uuid;

use super::{ProductDetails, Stock, StockDelta, StockRefusal};

/// A product in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: Uuid,
    pub details: ProductDetails,
    /// `None` when the product does not track its stock (unlimited), for good: decided when it is created.
    pub stock: Option<Stock>,
    /// The aggregate version: 1 when created, one more per change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The outcome of asking a product to take new details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductChange {
    /// The details differed: the product moved to its next version.
    Updated(events::ProductUpdated),
    /// The details were already these: nothing to record.
    Unchanged,
}

impl Product {
    /// Creates a product, tracking its stock from `stock` units when given, and returns it with the event that
    /// records it.
    pub fn create(details: ProductDetails, stock: Option<Stock>) -> (Self, events::ProductCreated) {
        let at = now();
        let product = Self { id: Uuid::now_v7(), details, stock, version: 1, created_at: at, updated_at: at };
        let event = events::ProductCreated { product: product.to_event_state() };
        (product, event)
    }

    /// Replaces the product's details. A change moves it to the next version; the same details again change
    /// nothing, so retries do not produce new versions.
    pub fn update(&mut self, details: ProductDetails) -> ProductChange {
        if self.details == details {
            return ProductChange::Unchanged;
        }
        self.details = details;
        self.next_version()
    }

    /// Restocks (or writes off, with a negative delta) a product that tracks its stock.
    pub fn adjust_stock(&mut self, delta: StockDelta) -> Result<events::ProductUpdated, StockRefusal> {
        let stock = self.stock.ok_or(StockRefusal::Untracked)?;
        self.stock = Some(stock.adjust(delta)?);
        Ok(self.next_version_event())
    }

    /// Takes `units` out of the available stock, for a reservation to hold. A product that does not track its
    /// stock always has them, and does not change.
    pub fn hold_stock(&mut self, units: u32) -> Result<ProductChange, StockRefusal> {
        let Some(stock) = self.stock else { return Ok(ProductChange::Unchanged) };
        self.stock = Some(stock.hold(units)?);
        Ok(self.next_version())
    }

    /// Puts back `units` a reservation held. A product that does not track its stock does not change.
    pub fn give_back_stock(&mut self, units: u32) -> ProductChange {
        let Some(stock) = self.stock else { return ProductChange::Unchanged };
        self.stock = Some(stock.give_back(units));
        self.next_version()
    }

    fn next_version(&mut self) -> ProductChange {
        ProductChange::Updated(self.next_version_event())
    }

    fn next_version_event(&mut self) -> events::ProductUpdated {
        self.version += 1;
        self.updated_at = now();
        events::ProductUpdated { product: self.to_event_state() }
    }

    /// The product as events carry it.
    pub fn to_event_state(&self) -> events::Product {
        events::Product {
            id: self.id,
            name: self.details.name().to_owned(),
            description: self.details.description().to_owned(),
            price_cents: self.details.price().cents(),
            stock: self.stock.map(Stock::available),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(name: &str, price_cents: i64) -> ProductDetails {
        ProductDetails::parse(name, "", price_cents).unwrap()
    }

    fn tracked(units: i64) -> Product {
        Product::create(details("Kettle", 2_499), Some(Stock::parse("stock", units).unwrap())).0
    }

    fn delta(units: i64) -> StockDelta {
        StockDelta::parse("delta", units).unwrap()
    }

    #[test]
    fn a_new_product_is_at_version_1() {
        let (product, event) = Product::create(details("Kettle", 2_499), None);

        assert_eq!(product.version, 1);
        assert_eq!(event.product, product.to_event_state());
    }

    #[test]
    fn updating_with_new_details_moves_to_the_next_version() {
        // Given
        let (mut product, _) = Product::create(details("Kettle", 2_499), None);

        // When
        let change = product.update(details("Kettle", 1_999));

        // Then
        let ProductChange::Updated(event) = change else { panic!("expected an update") };
        assert_eq!(product.version, 2);
        assert_eq!(event.product.version, 2);
        assert_eq!(event.product.price_cents, 1_999);
        assert!(product.updated_at >= product.created_at);
    }

    #[test]
    fn updating_with_the_same_details_changes_nothing() {
        let (mut product, _) = Product::create(details("Kettle", 2_499), None);
        let before = product.clone();

        let change = product.update(details("Kettle", 2_499));

        assert_eq!(change, ProductChange::Unchanged);
        assert_eq!(product, before);
    }

    #[test]
    fn a_new_product_carries_its_starting_stock_in_its_event() {
        let (product, event) =
            Product::create(details("Kettle", 2_499), Some(Stock::parse("stock", 7).unwrap()));

        assert_eq!(event.product.stock, Some(7));
        assert_eq!(product.stock.map(Stock::received), Some(7));
    }

    #[test]
    fn adjusting_stock_moves_to_the_next_version_with_the_new_stock() {
        // Given
        let mut product = tracked(10);

        // When
        let restocked = product.adjust_stock(delta(5)).unwrap();
        let written_off = product.adjust_stock(delta(-3)).unwrap();

        // Then
        assert_eq!((restocked.product.stock, restocked.product.version), (Some(15), 2));
        assert_eq!((written_off.product.stock, written_off.product.version), (Some(12), 3));
    }

    #[test]
    fn a_refused_adjustment_changes_nothing() {
        let mut untracked = Product::create(details("Kettle", 2_499), None).0;
        let mut tracked = tracked(2);
        let before = (untracked.clone(), tracked.clone());

        assert_eq!(untracked.adjust_stock(delta(1)), Err(StockRefusal::Untracked));
        assert_eq!(
            tracked.adjust_stock(delta(-3)),
            Err(StockRefusal::Insufficient { available: 2, requested: 3 })
        );
        assert_eq!((untracked, tracked), before);
    }

    #[test]
    fn holding_and_giving_back_stock_are_versions_of_a_tracked_product_only() {
        // Given
        let mut tracked = tracked(5);
        let mut untracked = Product::create(details("Mug", 899), None).0;

        // When
        let held = tracked.hold_stock(2).unwrap();
        let given_back = tracked.give_back_stock(2);

        // Then
        let (ProductChange::Updated(held), ProductChange::Updated(given_back)) = (held, given_back) else {
            panic!("expected two updates")
        };
        assert_eq!((held.product.stock, held.product.version), (Some(3), 2));
        assert_eq!((given_back.product.stock, given_back.product.version), (Some(5), 3));
        assert_eq!(untracked.hold_stock(1_000_000), Ok(ProductChange::Unchanged));
        assert_eq!(untracked.give_back_stock(1), ProductChange::Unchanged);
        assert_eq!(untracked.version, 1);
    }
}
