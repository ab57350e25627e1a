//! Orders and their rules: what a valid order request is, and how an order moves from pending to confirmed
//! (priced) or rejected. No I/O here: everything is unit-tested in place.

mod idempotency_key;
mod new_order;
mod order;
mod placed_by;

pub use idempotency_key::{IdempotencyKey, fingerprint};
pub use new_order::{LineItem, NewOrder};
pub use order::{Order, OrderError, OrderLine, OrderStatus, PricedProduct, Verdict};
pub use placed_by::PlacedBy;
