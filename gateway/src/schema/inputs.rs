//! The GraphQL input types, and their checks: what the gateway can tell about a value without asking a service
//! (ids are UUIDs, pages are bounded, prices are money, quantities are positive). Rules that belong to a domain
//! (name lengths, price limits) stay in the services, whose messages the gateway passes on.

use async_graphql::{InputObject, Result};
use shop_platform::{error::echo, pagination::Page};
use uuid::Uuid;

use super::errors::bad_input;
use crate::services::{self, ProductFields};

/// Which slice of a list to return. `skip` reaches 9 900 items deep; `after` (the last id of the previous page)
/// reaches any depth, at the same cost for every page.
#[derive(Debug, Clone, InputObject)]
pub struct PaginationInput {
    /// How many items to skip, at most 9 900 (deep pages are refused: every skipped item is read).
    #[graphql(default = 0)]
    pub skip: i32,
    /// How many items to return, from 1 to 100.
    #[graphql(default = 20)]
    pub take: i32,
    /// Only items after this one, in the list's order: the id of the last item of the previous page. Not with a
    /// text `query` (a search is ordered by relevance).
    pub after: Option<String>,
}

impl PaginationInput {
    /// The page to ask the service for.
    pub fn validate(pagination: Option<Self>) -> Result<services::Page> {
        let Some(Self { skip, take, after }) = pagination else {
            return Ok(services::Page { take: Page::DEFAULT_TAKE, ..Default::default() });
        };
        let skip = u64::try_from(skip).map_err(|_| bad_input("pagination.skip", "must be zero or more"))?;
        if skip > Page::MAX_SKIP {
            return Err(bad_input("pagination.skip", &format!("must be at most {}", Page::MAX_SKIP)));
        }
        let take =
            u32::try_from(take).ok().filter(|take| (1..=Page::MAX_TAKE).contains(take)).ok_or_else(|| {
                bad_input("pagination.take", &format!("must be between 1 and {}", Page::MAX_TAKE))
            })?;
        let after = after.map(|after| uuid("pagination.after", &after)).transpose()?;
        Ok(services::Page { skip, take, after })
    }
}

#[derive(Debug, Clone, InputObject)]
pub struct AccountInput {
    pub name: String,
}

#[derive(Debug, Clone, InputObject)]
pub struct ProductInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    /// Price in currency units, with at most two decimals.
    pub price: f64,
    /// Units in stock, zero or more: the product then tracks its stock, for good. Absent, it never does (it is
    /// never short). Only when the product is created; `adjustStock` changes it later.
    pub stock: Option<i64>,
}

impl ProductInput {
    /// The product's fields, with the price in cents.
    pub fn into_fields(self) -> Result<ProductFields> {
        let price_cents = self.price_cents()?;
        Ok(ProductFields { name: self.name, description: self.description, price_cents })
    }

    /// The price in cents.
    pub fn price_cents(&self) -> Result<i64> {
        let field = "product.price";
        if !self.price.is_finite() {
            return Err(bad_input(field, "must be a number"));
        }
        if self.price < 0.0 {
            return Err(bad_input(field, "must be zero or more"));
        }
        let cents = (self.price * 100.0).round();
        // Whole cents only; the tolerance absorbs binary floating point (19.99 * 100 = 1998.9999…).
        if (self.price * 100.0 - cents).abs() > 1e-6 {
            return Err(bad_input(field, "must have at most two decimals"));
        }
        if cents > i64::MAX as f64 {
            return Err(bad_input(field, "is too large"));
        }
        Ok(cents as i64)
    }
}

#[derive(Debug, Clone, InputObject)]
pub struct OrderInput {
    pub account_id: String,
    pub products: Vec<OrderProductInput>,
}

#[derive(Debug, Clone, InputObject)]
pub struct OrderProductInput {
    pub id: String,
    /// At least 1.
    pub quantity: i32,
}

impl OrderInput {
    /// `(account id, [(product id, quantity)])`, checked for malformed ids and quantities below 1.
    pub fn validate(&self) -> Result<(String, Vec<(String, u32)>)> {
        let account_id = uuid("order.accountId", &self.account_id)?;
        let lines = self
            .products
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let id = uuid(&format!("order.products[{i}].id"), &line.id)?;
                let quantity =
                    u32::try_from(line.quantity).ok().filter(|quantity| *quantity >= 1).ok_or_else(|| {
                        bad_input(&format!("order.products[{i}].quantity"), "must be at least 1")
                    })?;
                Ok((id, quantity))
            })
            .collect::<Result<_>>()?;
        Ok((account_id, lines))
    }
}

/// The id in argument `field`, checked to be a UUID. Ids are typed `String` where clients send them, as in the
/// original system's schema, so its operations (which declare `$id: String`) validate unchanged; answers type them
/// `ID`, which is what normalizing caches key on (see the README's "Ids" section).
pub fn uuid(field: &str, id: &str) -> Result<String> {
    Uuid::try_parse(id.trim())
        .map(|id| id.to_string())
        .map_err(|_| bad_input(field, &format!("`{}` is not a valid id", echo(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(price: f64) -> Result<i64> {
        ProductInput { name: "x".into(), description: String::new(), price, stock: None }.price_cents()
    }

    #[test]
    fn prices_become_whole_cents() {
        assert_eq!(price(19.99).unwrap(), 1_999);
        assert_eq!(price(0.0).unwrap(), 0);
        assert_eq!(price(1_000.1).unwrap(), 100_010);
    }

    #[test]
    fn negative_fractional_or_non_finite_prices_are_bad_input() {
        for bad in [-0.01, 19.999, f64::NAN, f64::INFINITY] {
            assert!(price(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_id_is_echoed_cut_short() {
        let error = uuid("id", &"é".repeat(1_000_000)).unwrap_err();

        assert!(error.message.len() < 200, "{}", error.message);
        assert!(uuid("id", "nope").unwrap_err().message.contains("`nope`"));
    }

    #[test]
    fn pages_are_bounded() {
        let page = |skip, take| PaginationInput::validate(Some(PaginationInput { skip, take, after: None }));

        assert_eq!(page(0, 100).unwrap(), services::Page { skip: 0, take: 100, after: None });
        assert!(page(0, 101).is_err());
        assert!(page(0, 0).is_err());
        assert!(page(-1, 10).is_err());
        assert!(page(9_901, 10).is_err());
        assert_eq!(
            PaginationInput::validate(None).unwrap(),
            services::Page { skip: 0, take: 20, after: None }
        );
    }
}
