use shop_platform::FieldViolation;

/// The stock of a product that tracks it: what is available to order, and every unit it ever received.
///
/// Units leave `available` when a reservation holds them and come back when it is released; `received` moves only
/// with adjustments. So `received - available` is what reservations hold, which the database checks against the
/// reservations themselves (the `stock_ledger` view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    available: i64,
    received: i64,
}

/// Why a product's stock cannot move as asked: the product's state refuses, not a malformed request. Each message
/// reads after the product's name (`product {id} does not track its stock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StockRefusal {
    #[error("does not track its stock")]
    Untracked,
    #[error(
        "the product has {available} units in stock; taking {requested} away would leave fewer than zero"
    )]
    Insufficient { available: i64, requested: i64 },
    #[error("has {available} units in stock; adding {added} would take it above {} units", Stock::MAX_UNITS)]
    AboveMaximum { available: i64, added: i64 },
}

impl Stock {
    /// One billion units: far more than any shelf holds, and far from overflowing however many adjustments add up.
    pub const MAX_UNITS: i64 = 1_000_000_000;

    /// The stock a product starts with, as request field `field` carries it: zero or more, at most
    /// [`Stock::MAX_UNITS`].
    pub fn parse(field: &str, units: i64) -> Result<Self, FieldViolation> {
        if units < 0 {
            return Err(FieldViolation::new(field, "must be zero or more"));
        }
        if units > Self::MAX_UNITS {
            return Err(FieldViolation::new(field, format!("must be at most {} units", Self::MAX_UNITS)));
        }
        Ok(Self { available: units, received: units })
    }

    /// The stock as stored; `None` when the columns break its rules, which the table's checks rule out.
    pub fn from_stored(available: i64, received: i64) -> Option<Self> {
        (0 <= available && available <= received).then_some(Self { available, received })
    }

    /// Units available to order.
    pub fn available(self) -> i64 {
        self.available
    }

    /// Every unit ever received: the initial stock plus every adjustment.
    pub fn received(self) -> i64 {
        self.received
    }

    /// Adds `delta` units received (a restock), or takes them away (a write-off, when negative).
    pub fn adjust(self, delta: StockDelta) -> Result<Self, StockRefusal> {
        let available = self.available + delta.0;
        if available < 0 {
            return Err(StockRefusal::Insufficient { available: self.available, requested: -delta.0 });
        }
        if available > Self::MAX_UNITS {
            return Err(StockRefusal::AboveMaximum { available: self.available, added: delta.0 });
        }
        Ok(Self { available, received: self.received + delta.0 })
    }

    /// Takes `units` out of what is available, for a reservation to hold.
    pub fn hold(self, units: u32) -> Result<Self, StockRefusal> {
        let units = i64::from(units);
        if units > self.available {
            return Err(StockRefusal::Insufficient { available: self.available, requested: units });
        }
        Ok(Self { available: self.available - units, ..self })
    }

    /// Puts back `units` a reservation held. Never more than was received: what a reservation gives back is what
    /// it took, which came out of `available`.
    pub fn give_back(self, units: u32) -> Self {
        let available = (self.available + i64::from(units)).min(self.received);
        Self { available, ..self }
    }
}

/// A change of stock asked for by staff: not zero, and at most [`Stock::MAX_UNITS`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockDelta(i64);

impl StockDelta {
    pub fn parse(field: &str, delta: i64) -> Result<Self, FieldViolation> {
        if delta == 0 {
            return Err(FieldViolation::new(field, "must not be zero"));
        }
        if delta.unsigned_abs() > Stock::MAX_UNITS.unsigned_abs() {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {} units either way", Stock::MAX_UNITS),
            ));
        }
        Ok(Self(delta))
    }

    pub fn units(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(units: i64) -> Stock {
        Stock::parse("stock", units).unwrap()
    }

    fn delta(units: i64) -> StockDelta {
        StockDelta::parse("delta", units).unwrap()
    }

    #[test]
    fn a_starting_stock_is_zero_or_more_and_bounded() {
        assert_eq!(stock(0).available(), 0);
        assert_eq!(stock(Stock::MAX_UNITS).received(), Stock::MAX_UNITS);
        assert_eq!(Stock::parse("stock", -1).unwrap_err().field, "stock");
        assert_eq!(Stock::parse("stock", Stock::MAX_UNITS + 1).unwrap_err().field, "stock");
    }

    #[test]
    fn a_delta_is_never_zero_and_bounded_either_way() {
        assert!(StockDelta::parse("delta", 0).is_err());
        assert!(StockDelta::parse("delta", -Stock::MAX_UNITS).is_ok());
        assert!(StockDelta::parse("delta", Stock::MAX_UNITS + 1).is_err());
        assert!(StockDelta::parse("delta", i64::MIN).is_err());
    }

    #[test]
    fn a_restock_and_a_write_off_move_both_available_and_received() {
        let restocked = stock(10).adjust(delta(5)).unwrap();
        let written_off = restocked.adjust(delta(-15)).unwrap();

        assert_eq!((restocked.available(), restocked.received()), (15, 15));
        assert_eq!((written_off.available(), written_off.received()), (0, 0));
    }

    #[test]
    fn an_adjustment_never_takes_stock_below_zero_or_above_the_maximum() {
        assert_eq!(
            stock(3).adjust(delta(-4)),
            Err(StockRefusal::Insufficient { available: 3, requested: 4 })
        );
        assert_eq!(
            stock(Stock::MAX_UNITS).adjust(delta(1)),
            Err(StockRefusal::AboveMaximum { available: Stock::MAX_UNITS, added: 1 })
        );
    }

    #[test]
    fn holding_takes_from_available_only_and_giving_back_restores_it() {
        // Given
        let before = stock(10);

        // When
        let held = before.hold(4).unwrap();
        let given_back = held.give_back(4);

        // Then
        assert_eq!((held.available(), held.received()), (6, 10));
        assert_eq!(given_back, before);
        assert_eq!(held.hold(7), Err(StockRefusal::Insufficient { available: 6, requested: 7 }));
    }

    #[test]
    fn giving_back_never_makes_more_available_than_was_received() {
        assert_eq!(stock(10).give_back(5).available(), 10);
    }

    #[test]
    fn stored_stock_that_breaks_the_rules_is_refused() {
        assert!(Stock::from_stored(3, 10).is_some());
        assert!(Stock::from_stored(-1, 10).is_none());
        assert!(Stock::from_stored(11, 10).is_none());
    }
}
