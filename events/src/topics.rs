//! Kafka topic names and how each topic must be configured. Entity topics (`accounts`, `products`) are compacted
//! and keyed by entity id; every event on them carries the entity's full state, so a replay from offset 0 rebuilds
//! any projection. The orders topic is keyed by order id and its events carry the full order.

/// Account events (`shop.account.*`), keyed by account id. Compacted.
pub const ACCOUNTS: &str = "shop.accounts.v1";

/// Product events (`shop.product.*`), keyed by product id. Compacted.
pub const PRODUCTS: &str = "shop.products.v1";

/// Order events (`shop.order.*`), keyed by order id.
pub const ORDERS: &str = "shop.orders.v1";

/// The relay's heartbeats ([`heartbeat`](crate::heartbeat)), keyed by outbox. Compacted.
pub const HEARTBEATS: &str = "shop.outbox-heartbeats.v1";

/// A topic and the `cleanup.policy` it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    /// `true` for entity topics: Kafka keeps the latest record per key (`cleanup.policy=compact`).
    pub compacted: bool,
}

impl TopicSpec {
    /// The value of the topic's `cleanup.policy` setting.
    pub fn cleanup_policy(&self) -> &'static str {
        if self.compacted { "compact" } else { "delete" }
    }
}

/// Every topic the shop publishes to.
pub const ALL: [TopicSpec; 4] = [
    TopicSpec { name: ACCOUNTS, compacted: true },
    TopicSpec { name: PRODUCTS, compacted: true },
    TopicSpec { name: ORDERS, compacted: false },
    TopicSpec { name: HEARTBEATS, compacted: true },
];
