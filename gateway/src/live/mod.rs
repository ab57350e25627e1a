//! Live order updates for GraphQL subscriptions: the order topic, read by each gateway process from its end, fanned
//! out to the subscriptions this process serves.
//!
//! - [`OrderFeed`]: one Kafka consumer per process, without a consumer group (every gateway instance must see every
//!   order, and none may take partitions from another), positioned at the end of every partition of the order topic
//!   before any subscription is accepted. It starts with the first subscription, so a gateway nobody subscribes to
//!   never talks to Kafka.
//! - [`Listener`]: one subscription's queue of updates, registered before the subscription reads the order's current
//!   state (so no version committed after that read can be missed), bounded (a subscriber that stops reading has its
//!   connection closed with [`SLOW_SUBSCRIBER`] instead of holding more), and counted against the caps per connection
//!   and per process.
//! - [`Connection`]: what the subscriptions of one WebSocket connection share: their cap, and the way to close the
//!   connection with a code and a reason.
//!
//! The GraphQL side (first the current state, then versions newer than what was sent, until the order is final)
//! lives in [`crate::schema::subscription`]; the WebSocket protocol in `crate::http::websocket`.

mod connection;
mod feed;

pub use self::{
    connection::{CloseFrame, Connection, GOING_AWAY, SLOW_SUBSCRIBER, UPDATES_LOST},
    feed::{Interest, ListenError, Listener, OrderFeed},
};

use std::time::Duration;

const DEFAULT_MAX_SUBSCRIPTIONS: usize = 10_000;
const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
const DEFAULT_SUBSCRIPTION_BUFFER: usize = 64;
const DEFAULT_LIVE_START_TIMEOUT_MS: u64 = 10_000;

/// Limits and timings of GraphQL subscriptions.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveSettings {
    /// Most subscriptions this gateway process serves at once; past it, a new subscription fails with
    /// TOO_MANY_REQUESTS.
    #[arg(long, env = "SUBSCRIPTIONS_MAX", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS)]
    pub max_subscriptions: usize,
    /// Most subscriptions one WebSocket connection may hold at once; past it, a new one fails with
    /// TOO_MANY_REQUESTS.
    #[arg(long, env = "SUBSCRIPTIONS_PER_CONNECTION", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    pub max_subscriptions_per_connection: usize,
    /// Updates one subscription may leave unread; a subscriber further behind has its connection closed (code
    /// 4008), so a client that stops reading never makes the gateway hold more.
    #[arg(long, env = "SUBSCRIPTION_BUFFER", default_value_t = DEFAULT_SUBSCRIPTION_BUFFER)]
    pub subscription_buffer: usize,
    /// How long a subscription waits for the order topic to be positioned (the first one in a process starts the
    /// consumer) before failing with UNAVAILABLE.
    #[arg(long, env = "LIVE_START_TIMEOUT_MS", default_value_t = DEFAULT_LIVE_START_TIMEOUT_MS)]
    pub live_start_timeout_ms: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            subscription_buffer: DEFAULT_SUBSCRIPTION_BUFFER,
            live_start_timeout_ms: DEFAULT_LIVE_START_TIMEOUT_MS,
        }
    }
}

impl LiveSettings {
    pub fn start_timeout(&self) -> Duration {
        Duration::from_millis(self.live_start_timeout_ms)
    }
}
