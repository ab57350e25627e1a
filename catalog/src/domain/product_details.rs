use shop_platform::FieldViolation;

/// What a seller says about a product: its name, description and price, validated together so that a request
/// learns about every problem at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDetails {
    name: String,
    description: String,
    price: Price,
}

/// A price in cents: zero or more, at most [`Price::MAX_CENTS`] (which keeps every order total far from
/// overflowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(i64);

impl Price {
    /// Ten million units of currency.
    pub const MAX_CENTS: i64 = 1_000_000_000;

    pub fn from_cents(field: &str, cents: i64) -> Result<Self, FieldViolation> {
        if cents < 0 {
            return Err(FieldViolation::new(field, "must be zero or more"));
        }
        if cents > Self::MAX_CENTS {
            return Err(FieldViolation::new(field, format!("must be at most {} cents", Self::MAX_CENTS)));
        }
        Ok(Self(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

impl ProductDetails {
    pub const MAX_NAME_CHARS: usize = 200;
    pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

    /// Validates the details as received: names and descriptions are trimmed; the name is required; the
    /// description may be empty.
    pub fn parse(name: &str, description: &str, price_cents: i64) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let name = name.trim();
        let description = description.trim();

        if name.is_empty() {
            violations.push(FieldViolation::new("name", "must not be blank"));
        } else if name.chars().count() > Self::MAX_NAME_CHARS {
            violations.push(FieldViolation::new(
                "name",
                format!("must be at most {} characters", Self::MAX_NAME_CHARS),
            ));
        } else if name.chars().any(char::is_control) {
            violations.push(FieldViolation::new("name", "must not contain control characters"));
        }

        if description.chars().count() > Self::MAX_DESCRIPTION_CHARS {
            violations.push(FieldViolation::new(
                "description",
                format!("must be at most {} characters", Self::MAX_DESCRIPTION_CHARS),
            ));
        } else if description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
            violations.push(FieldViolation::new("description", "must not contain control characters"));
        }

        let price = Price::from_cents("price_cents", price_cents).map_err(|v| violations.push(v));

        match price {
            Ok(price) if violations.is_empty() => {
                Ok(Self { name: name.to_owned(), description: description.to_owned(), price })
            }
            _ => Err(violations),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn price(&self) -> Price {
        self.price
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: Vec<FieldViolation>) -> Vec<String> {
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn valid_details_are_trimmed() {
        let details = ProductDetails::parse("  Kettle ", " Boils water.\n", 2_499).unwrap();

        assert_eq!(details.name(), "Kettle");
        assert_eq!(details.description(), "Boils water.");
        assert_eq!(details.price().cents(), 2_499);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let violations = ProductDetails::parse(" ", &"x".repeat(5_001), -1).unwrap_err();

        assert_eq!(fields(violations), ["name", "description", "price_cents"]);
    }

    #[test]
    fn an_empty_description_and_a_zero_price_are_fine() {
        assert!(ProductDetails::parse("Free sample", "", 0).is_ok());
    }

    #[test]
    fn prices_are_bounded() {
        assert!(Price::from_cents("price_cents", Price::MAX_CENTS).is_ok());
        assert!(Price::from_cents("price_cents", Price::MAX_CENTS + 1).is_err());
        assert!(Price::from_cents("price_cents", -1).is_err());
    }

    #[test]
    fn names_are_bounded_and_free_of_control_characters() {
        assert!(ProductDetails::parse(&"n".repeat(200), "", 1).is_ok());
        assert_eq!(fields(ProductDetails::parse(&"n".repeat(201), "", 1).unwrap_err()), ["name"]);
        assert_eq!(fields(ProductDetails::parse("a\u{7}b", "", 1).unwrap_err()), ["name"]);
        assert!(ProductDetails::parse("Kettle", "line one\n\tline two", 1).is_ok());
    }
}
