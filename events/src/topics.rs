//! Kafka topic names and how each topic must be configured. Entity topics (`accounts`, `products`) are compacted
//! and keyed by entity id; every event on them carries the entity's full state, so a replay from offset 0 rebuilds
//! any projection — as long as the topic still holds its history. Retention, `DeleteRecords` or a broker that keeps
//! only so much per partition remove the first records; the owning service's `republish` command then appends every
//! entity's current state again, and records the run on [`REPUBLISHES`]. The orders topic is keyed by order id and
//! its events carry the full order; so is the stock reservations topic, whose events carry the catalog's whole
//! reservation for one order.

/// Account events (`shop.account.*`), keyed by account id. Compacted.
pub const ACCOUNTS: &str = "shop.accounts.v1";

/// Product events (`shop.product.*`), keyed by product id. Compacted.
pub const PRODUCTS: &str = "shop.products.v1";

/// Order events (`shop.order.*`), keyed by order id.
pub const ORDERS: &str = "shop.orders.v1";

/// The catalog's stock reservations (`shop.stock.*`), keyed by order id: its answers to orders awaiting stock, and
/// their releases ([`stock`](crate::stock)).
pub const STOCK_RESERVATIONS: &str = "shop.stock-reservations.v1";

/// The relay's heartbeats ([`heartbeat`](crate::heartbeat)), keyed by outbox. Compacted.
pub const HEARTBEATS: &str = "shop.outbox-heartbeats.v1";

/// Completed republishes ([`republish`](crate::republish)): per run, the entity topic it refilled and from which
/// offsets. Keyed by run id. Compacted.
pub const REPUBLISHES: &str = "shop.republishes.v1";

/// A topic and the `cleanup.policy` it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    /// `true` for entity topics: Kafka keeps the latest record per key (`cleanup.policy=compact`).
    pub compacted: bool,
    /// The binary whose `republish` command appends the current state of every entity of this topic again (`account
    /// republish`), for topics whose history a consumer may need back; `None` for the relay's own topics.
    pub republished_by: Option<&'static str>,
}

impl TopicSpec {
    /// The value of the topic's `cleanup.policy` setting.
    pub fn cleanup_policy(&self) -> &'static str {
        if self.compacted { "compact" } else { "delete" }
    }
}

/// Every topic the shop publishes to.
pub const ALL: [TopicSpec; 6] = [
    TopicSpec { name: ACCOUNTS, compacted: true, republished_by: Some("account") },
    TopicSpec { name: PRODUCTS, compacted: true, republished_by: Some("catalog") },
    TopicSpec { name: ORDERS, compacted: false, republished_by: Some("order") },
    TopicSpec { name: STOCK_RESERVATIONS, compacted: false, republished_by: None },
    TopicSpec { name: HEARTBEATS, compacted: true, republished_by: None },
    TopicSpec { name: REPUBLISHES, compacted: true, republished_by: None },
];

/// The spec of `topic` (as named without any prefix), if it is one of the shop's.
pub fn spec(topic: &str) -> Option<&'static TopicSpec> {
    ALL.iter().find(|spec| spec.name == topic)
}
