//! Kafka topic names. Entity topics (`accounts`, `products`) are compacted and keyed by entity id; every event on
//! them carries the entity's full state. The orders topic is keyed by order id and its events carry the full order.

/// Account events (`shop.account.*`), keyed by account id. Compacted.
pub const ACCOUNTS: &str = "shop.accounts.v1";

/// Product events (`shop.product.*`), keyed by product id. Compacted.
pub const PRODUCTS: &str = "shop.products.v1";

/// Order events (`shop.order.*`), keyed by order id.
pub const ORDERS: &str = "shop.orders.v1";

/// Every topic the shop publishes to.
pub const ALL: [&str; 3] = [ACCOUNTS, PRODUCTS, ORDERS];
