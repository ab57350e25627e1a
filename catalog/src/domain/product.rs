use chrono::{DateTime, Utc};
use shop_events::{catalog as events, envelope::now};
use uuid::Uuid;

use super::ProductDetails;

/// A product in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: Uuid,
    pub details: ProductDetails,
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
    /// Creates a product, and returns it with the event that records it.
    pub fn create(details: ProductDetails) -> (Self, events::ProductCreated) {
        let at = now();
        let product = Self { id: Uuid::now_v7(), details, version: 1, created_at: at, updated_at: at };
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
        self.version += 1;
        self.updated_at = now();
        ProductChange::Updated(events::ProductUpdated { product: self.to_event_state() })
    }

    /// The product as events carry it.
    pub fn to_event_state(&self) -> events::Product {
        events::Product {
            id: self.id,
            name: self.details.name().to_owned(),
            description: self.details.description().to_owned(),
            price_cents: self.details.price().cents(),
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

    #[test]
    fn a_new_product_is_at_version_1() {
        let (product, event) = Product::create(details("Kettle", 2_499));

        assert_eq!(product.version, 1);
        assert_eq!(event.product, product.to_event_state());
    }

    #[test]
    fn updating_with_new_details_moves_to_the_next_version() {
        // Given
        let (mut product, _) = Product::create(details("Kettle", 2_499));

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
        let (mut product, _) = Product::create(details("Kettle", 2_499));
        let before = product.clone();

        let change = product.update(details("Kettle", 2_499));

        assert_eq!(change, ProductChange::Unchanged);
        assert_eq!(product, before);
    }
}
