//! A client's key for one attempt at placing an order, so that retrying it cannot place the order twice.

use std::fmt::Write as _;

use shop_platform::FieldViolation;

use super::Order;

/// A client-chosen key naming one order placement (the `Idempotency-Key` of the IETF draft, as Stripe uses it):
/// 1 to 255 printable ASCII characters, no spaces. Scoped to the order's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;

    /// The key `value` names, `None` for an empty one (no key), or why it is not a key.
    pub fn parse(value: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() > Self::MAX_CHARS || !value.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(FieldViolation::new(
                "idempotency_key",
                format!("must be 1 to {} printable ASCII characters without spaces", Self::MAX_CHARS),
            ));
        }
        Ok(Some(Self(value.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request to place `order` asked for, written the same way whatever order its lines came in (they are
/// merged per product when the order is placed): a retry of the same request has the same fingerprint, a
/// different request under the same key has another.
pub fn fingerprint(order: &Order) -> String {
    let mut lines: Vec<(uuid::Uuid, u32)> =
        order.lines.iter().map(|line| (line.product_id, line.quantity)).collect();
    lines.sort_unstable();
    let mut fingerprint = order.account_id.to_string();
    for (product_id, quantity) in lines {
        let _ = write!(fingerprint, " {product_id}x{quantity}");
    }
    fingerprint
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{NewOrder, PlacedBy};

    #[test]
    fn empty_is_no_key_and_anything_else_must_be_printable_ascii() {
        assert_eq!(IdempotencyKey::parse("").unwrap(), None);
        assert_eq!(IdempotencyKey::parse("retry-1").unwrap().unwrap().as_str(), "retry-1");
        assert!(IdempotencyKey::parse(&"k".repeat(255)).unwrap().is_some());
        for bad in ["k".repeat(256), "a key".into(), "clé".into(), "tab\t".into()] {
            assert!(IdempotencyKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint_whatever_the_order_of_its_lines() {
        let (account, kettle, mug) =
            (Uuid::now_v7().to_string(), Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let order = |lines: &[(&str, u32)]| {
            let new = NewOrder::parse(&account, lines.iter().copied()).unwrap().by(PlacedBy::Unrestricted);
            fingerprint(&Order::place(new).0)
        };

        assert_eq!(order(&[(&kettle, 1), (&mug, 2)]), order(&[(&mug, 2), (&kettle, 1)]));
        assert_eq!(order(&[(&kettle, 1), (&kettle, 1)]), order(&[(&kettle, 2)]));
        assert_ne!(order(&[(&kettle, 1)]), order(&[(&kettle, 2)]));
    }
}
