//! Orders and their rules: what a valid order request is, and how an order moves through its saga — from pending
//! to confirmed (priced), possibly by way of awaiting the catalog's stock, or to rejected or cancelled. No I/O
//! here: everything is unit-tested in place.

mod idempotency_key;
mod new_order;
mod order;
mod placed_by;

pub use idempotency_key::{IdempotencyKey, fingerprint};
pub use new_order::{LineItem, NewOrder};
pub use order::{
    CatalogProduct, Order, OrderError, OrderLine, OrderStatus, PricedProduct, Shortage, Verdict,
};
pub use placed_by::PlacedBy;
