use std::collections::{HashMap, hash_map::Entry};

use shop_platform::{FieldViolation, ids::parse_id};
use uuid::Uuid;

use super::PlacedBy;

/// A product and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineItem {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// A valid order request: an account and at least one line, one line per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    account_id: Uuid,
    lines: Vec<LineItem>,
    placed_by: PlacedBy,
}

impl NewOrder {
    /// The most distinct products one order may hold.
    pub const MAX_LINES: usize = 100;
    /// The most lines a request may carry as sent, before lines for the same product are merged: room for a
    /// client that sends one line per item, and few enough that checking a request stays cheap whatever it holds.
    pub const MAX_REQUEST_LINES: usize = 10 * Self::MAX_LINES;
    /// The most of one product one order may hold.
    pub const MAX_QUANTITY: u32 = 10_000;

    /// Validates a request as received (ids as strings), reporting every problem at once. Lines for the same
    /// product are merged, in the order the products first appear. A request with more than
    /// [`MAX_REQUEST_LINES`](Self::MAX_REQUEST_LINES) lines is refused before any line is looked at, and the rest
    /// takes time linear in the number of lines.
    pub fn parse<'a, I>(account_id: &str, lines: I) -> Result<Self, Vec<FieldViolation>>
    where
        I: IntoIterator<Item = (&'a str, u32)>,
        I::IntoIter: ExactSizeIterator,
    {
        let lines = lines.into_iter();
        if lines.len() > Self::MAX_REQUEST_LINES {
            return Err(vec![FieldViolation::new(
                "lines",
                format!("an order may carry at most {} lines, not {}", Self::MAX_REQUEST_LINES, lines.len()),
            )]);
        }
        let mut violations = Vec::new();
        let account_id = parse_id("account_id", account_id).map_err(|v| violations.push(v));
        let received = lines.len();
        let merged = merge(lines, &mut violations);

        if received == 0 {
            violations.push(FieldViolation::new("lines", "an order needs at least one line"));
        }
        if merged.len() > Self::MAX_LINES {
            violations.push(FieldViolation::new(
                "lines",
                format!("an order may hold at most {} different products", Self::MAX_LINES),
            ));
        }
        for line in merged.iter().filter(|line| line.quantity > Self::MAX_QUANTITY) {
            violations.push(FieldViolation::new(
                "lines",
                format!("product {} is ordered more than {} times", line.product_id, Self::MAX_QUANTITY),
            ));
        }

        match account_id {
            Ok(account_id) if violations.is_empty() => {
                Ok(Self { account_id, lines: merged, placed_by: PlacedBy::Unrestricted })
            }
            _ => Err(violations),
        }
    }

    /// The same order, placed by `placed_by` (unrestricted unless said).
    pub fn by(self, placed_by: PlacedBy) -> Self {
        Self { placed_by, ..self }
    }

    pub fn account_id(&self) -> Uuid {
        self.account_id
    }

    pub fn placed_by(&self) -> &PlacedBy {
        &self.placed_by
    }

    pub fn lines(&self) -> &[LineItem] {
        &self.lines
    }

    /// Every product the order names, once each.
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|line| line.product_id).collect()
    }
}

/// The valid lines, one per product in first-seen order, with quantities summed; a malformed id or a zero
/// quantity is added to `violations` instead. A map from product to its line keeps this linear: a search of the
/// merged lines for each received one made a request of n lines cost n² comparisons.
fn merge<'a>(
    lines: impl Iterator<Item = (&'a str, u32)>,
    violations: &mut Vec<FieldViolation>,
) -> Vec<LineItem> {
    let mut merged: Vec<LineItem> = Vec::new();
    let mut line_of: HashMap<Uuid, usize> = HashMap::new();
    for (i, (product_id, quantity)) in lines.enumerate() {
        let product_id =
            parse_id(&format!("lines[{i}].product_id"), product_id).map_err(|v| violations.push(v));
        if quantity == 0 {
            violations.push(FieldViolation::new(format!("lines[{i}].quantity"), "must be at least 1"));
            continue;
        }
        let Ok(product_id) = product_id else { continue };
        match line_of.entry(product_id) {
            Entry::Occupied(line) => {
                let line = &mut merged[*line.get()];
                line.quantity = line.quantity.saturating_add(quantity);
            }
            Entry::Vacant(slot) => {
                slot.insert(merged.len());
                merged.push(LineItem { product_id, quantity });
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: Vec<FieldViolation>) -> Vec<String> {
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn repeated_products_are_merged_in_first_seen_order() {
        let (a, b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let account = Uuid::now_v7();

        let order = NewOrder::parse(&account.to_string(), [(&*a, 1), (&*b, 2), (&*a, 3)]).unwrap();

        assert_eq!(order.account_id(), account);
        let lines: Vec<_> = order.lines().iter().map(|l| (l.product_id.to_string(), l.quantity)).collect();
        assert_eq!(lines, [(a, 4), (b, 2)]);
    }

    #[test]
    fn an_empty_order_is_rejected() {
        let violations = NewOrder::parse(&Uuid::now_v7().to_string(), []).unwrap_err();

        assert_eq!(fields(violations), ["lines"]);
    }

    #[test]
    fn every_malformed_id_and_zero_quantity_is_reported() {
        let good = Uuid::now_v7().to_string();

        let violations = NewOrder::parse("me", [("p", 1), (&*good, 0)]).unwrap_err();

        assert_eq!(fields(violations), ["account_id", "lines[0].product_id", "lines[1].quantity"]);
    }

    #[test]
    fn quantities_and_line_counts_are_bounded() {
        let account = Uuid::now_v7().to_string();
        let product = Uuid::now_v7().to_string();
        let many: Vec<String> = (0..=NewOrder::MAX_LINES).map(|_| Uuid::now_v7().to_string()).collect();

        let too_many_of_one = NewOrder::parse(&account, [(&*product, 6_000), (&*product, 5_000)]);
        let too_many_lines = NewOrder::parse(&account, many.iter().map(|id| (id.as_str(), 1)));
        let at_the_limit = NewOrder::parse(&account, [(&*product, NewOrder::MAX_QUANTITY)]);

        assert_eq!(fields(too_many_of_one.unwrap_err()), ["lines"]);
        assert_eq!(fields(too_many_lines.unwrap_err()), ["lines"]);
        assert!(at_the_limit.is_ok());
    }

    #[test]
    fn a_request_with_too_many_lines_is_refused_before_any_line_is_read() {
        let account = Uuid::now_v7().to_string();
        let lines = vec![("not even an id", 0); NewOrder::MAX_REQUEST_LINES + 1];

        let violations = NewOrder::parse(&account, lines.iter().copied()).unwrap_err();

        assert_eq!(violations.len(), 1, "no line was checked: {violations:?}");
        assert_eq!(violations[0].description, "an order may carry at most 1000 lines, not 1001");
    }

    #[test]
    fn many_lines_of_few_products_merge_up_to_the_request_limit() {
        let account = Uuid::now_v7().to_string();
        let (a, b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let lines: Vec<(&str, u32)> =
            (0..NewOrder::MAX_REQUEST_LINES).map(|i| (if i % 2 == 0 { &*a } else { &*b }, 1)).collect();

        let order = NewOrder::parse(&account, lines.iter().copied()).unwrap();

        let merged: Vec<_> = order.lines().iter().map(|l| (l.product_id.to_string(), l.quantity)).collect();
        assert_eq!(merged, [(a, 500), (b, 500)]);
    }
}
