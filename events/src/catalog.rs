//! Product events, published on [`topics::PRODUCTS`](crate::topics::PRODUCTS) and keyed by product id.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{AggregateType, domain_event, event_family, invariants};

/// A product's full state as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Units available to order when the product tracks its stock (decided when it is created); absent when it
    /// does not (unlimited), and in events written before stock existed. Every change of stock is a new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// The catalog's rules for a product: an id, a name of 1–200 characters without control characters, a
    /// description of at most 5 000 (line breaks and tabs allowed), a price and a stock of zero or more, a version of
    /// 1 or more.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::id("product.id", self.id)?;
        invariants::positive("product.version", self.version)?;
        invariants::money("product.price_cents", self.price_cents)?;
        if let Some(stock) = self.stock.filter(|stock| *stock < 0) {
            return Err(format!("product.stock must not be negative, not {stock}"));
        }
        check_details("product", &self.name, &self.description)
    }
}

/// The catalog's rules for a product's name and description, wherever they are carried (`field` says where).
pub(crate) fn check_details(field: &str, name: &str, description: &str) -> Result<(), String> {
    invariants::text(&format!("{field}.name"), name, 200, true, &[])?;
    invariants::text(
        &format!("{field}.description"),
        description,
        5_000,
        false,
        invariants::LINE_BREAKS_AND_TABS,
    )
}

/// `shop.product.created.v1`: a product was added to the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProductCreated {
    pub product: Product,
}

/// `shop.product.updated.v1`: a product's name, description, price or stock changed (stock moves when it is
/// adjusted, and when orders reserve or release it); `product` is its new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProductUpdated {
    pub product: Product,
}

/// `shop.product.republished.v1`: nothing happened to the product; this is its current state, appended again by
/// `catalog republish` at the version it already has ([`republish`](crate::republish)). Apply it like any other
/// event, by version: a consumer that holds this version ignores it, one that lost the product's history gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProductRepublished {
    pub product: Product,
}

domain_event!(ProductCreated, AggregateType::PRODUCT, "shop.product.created" v 1, product);
domain_event!(ProductUpdated, AggregateType::PRODUCT, "shop.product.updated" v 1, product);
domain_event!(ProductRepublished, AggregateType::PRODUCT, "shop.product.republished" v 1, product);

event_family! {
    /// Every event on the products topic.
    pub enum ProductEvent {
        Created(ProductCreated),
        Updated(ProductUpdated),
        Republished(ProductRepublished),
    }
}

impl ProductEvent {
    /// The product's state after the event, whichever event it is.
    pub fn product(&self) -> &Product {
        match self {
            Self::Created(ProductCreated { product })
            | Self::Updated(ProductUpdated { product })
            | Self::Republished(ProductRepublished { product }) => product,
        }
    }

    /// The same, owned.
    pub fn into_product(self) -> Product {
        match self {
            Self::Created(ProductCreated { product })
            | Self::Updated(ProductUpdated { product })
            | Self::Republished(ProductRepublished { product }) => product,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, envelope::now, topics};

    fn product(version: i64) -> Product {
        let at = now();
        Product {
            id: Uuid::now_v7(),
            name: "Kettle".into(),
            description: "Boils water, loudly.".into(),
            price_cents: 2_499,
            stock: None,
            version,
            created_at: at,
            updated_at: at,
        }
    }

    fn round_trip(envelope: &Envelope) -> (Envelope, ProductEvent) {
        let read: Envelope = serde_json::from_str(&serde_json::to_string(envelope).unwrap()).unwrap();
        let payload = serde_json::to_vec(&read.payload).unwrap();
        let event = ProductEvent::decode(&read.event_type, &payload).unwrap();
        (read, event)
    }

    #[test]
    fn product_created_round_trips_through_json() {
        let event = ProductCreated { product: product(1) };
        let envelope = Envelope::new(&event, None);

        let (read, decoded) = round_trip(&envelope);

        assert_eq!(read, envelope);
        assert_eq!(read.event_type, "shop.product.created.v1");
        assert_eq!(read.topic, topics::PRODUCTS);
        assert_eq!(decoded, ProductEvent::Created(event.clone()));
        assert_eq!(decoded.product(), &event.product);
    }

    #[test]
    fn product_updated_round_trips_through_json() {
        let event = ProductUpdated { product: product(2) };
        let envelope = Envelope::new(&event, None);

        let (read, decoded) = round_trip(&envelope);

        assert_eq!(read, envelope);
        assert_eq!(read.event_type, "shop.product.updated.v1");
        assert_eq!(read.aggregate_version, 2);
        assert_eq!(decoded, ProductEvent::Updated(event));
    }

    #[test]
    fn a_republished_product_carries_its_current_state_at_its_current_version() {
        let event = ProductRepublished { product: product(3) };
        let envelope = Envelope::new(&event, None);

        let (read, decoded) = round_trip(&envelope);

        assert_eq!(read.event_type, "shop.product.republished.v1");
        assert_eq!(read.topic, topics::PRODUCTS);
        assert_eq!(read.aggregate_version, 3);
        assert_eq!(decoded.product(), &event.product);
        assert_eq!(decoded, ProductEvent::Republished(event));
    }

    #[test]
    fn an_unknown_event_type_is_reported_as_such() {
        let error = ProductEvent::decode("shop.product.deleted.v1", b"{}").unwrap_err();

        assert!(matches!(error, crate::DecodeError::UnknownType(t) if t == "shop.product.deleted.v1"));
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_a_payload_error() {
        let error = ProductEvent::decode("shop.product.created.v1", br#"{"product": 3}"#).unwrap_err();

        assert!(matches!(error, crate::DecodeError::Payload(_)));
    }
}

#[cfg(test)]
mod invariant_tests {
    use super::*;
    use crate::DecodeError;

    fn product(price_cents: i64, name: &str) -> Product {
        let at = Utc::now();
        Product {
            id: Uuid::now_v7(),
            name: name.into(),
            description: String::new(),
            price_cents,
            stock: None,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn decode(product: Product) -> Result<ProductEvent, DecodeError> {
        let payload = serde_json::to_vec(&ProductCreated { product }).unwrap();
        ProductEvent::decode("shop.product.created.v1", &payload)
    }

    #[test]
    fn a_product_event_no_catalog_could_write_is_refused_at_decode_time() {
        let nil = Product { id: Uuid::nil(), ..product(100, "Kettle") };
        let unversioned = Product { version: 0, ..product(100, "Kettle") };
        let long = product(100, &"n".repeat(201));
        let long_description = Product { description: "d".repeat(5_001), ..product(100, "Kettle") };
        let bell = Product { description: "a\u{7}bell".into(), ..product(100, "Kettle") };
        let forged =
            [(-1, "Kettle"), (100, " "), (100, "Ket\0tle"), (100, "Ket\ntle")].map(|(p, n)| product(p, n));

        for product in [nil, unversioned, long, long_description, bell].into_iter().chain(forged) {
            let error = decode(product.clone()).unwrap_err();
            assert!(matches!(error, DecodeError::Invalid(_)), "{product:?}: {error}");
        }
    }

    #[test]
    fn a_product_event_within_the_catalogs_rules_decodes() {
        let multi_line = Product { description: "Boils water.\n\tFast.".into(), ..product(0, "Kettle") };
        let longest = Product { description: "d".repeat(5_000), ..product(100, &"n".repeat(200)) };

        for product in [product(100, "Kettle"), multi_line, longest] {
            assert!(decode(product.clone()).is_ok(), "{product:?}");
        }
    }
}
