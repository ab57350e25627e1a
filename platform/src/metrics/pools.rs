//! The process's Postgres connection pools, read from sqlx when `/metrics` is scraped (so never stale, and free
//! between scrapes):
//!
//! - `shop_db_pool_connections{pool,state}`: connections open, `in_use` (lent to a query or transaction) or `idle`;
//! - `shop_db_pool_max_connections{pool}`: the most the pool will open.
//!
//! `pool` is the role the pool serves (`account`, `catalog`, `order`, `relay`), fixed in code. Pools of one role in
//! one process (the relay's, one per outbox; several applications in a test process) add up.
//!
//! There is no "waiting" series: sqlx 0.9 counts no tasks waiting for a connection and offers no hook around an
//! acquire (`before_acquire` runs once a connection is already taken), and the services acquire implicitly in
//! dozens of places (`pool.begin()`, `&pool` as an executor), so timing each wait would mean wrapping every one of
//! them. Saturation shows as `in_use` reaching `max_connections`; a wait past `DATABASE_ACQUIRE_TIMEOUT_MS` fails
//! the call as UNAVAILABLE, which the gRPC metrics count.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{family::Family, gauge::Gauge},
};
use sqlx::PgPool;

use super::with_registry;

/// The pools being watched, by a number of their own (a role may have several).
static POOLS: LazyLock<Mutex<HashMap<u64, (&'static str, PgPool)>>> = LazyLock::new(|| {
    with_registry(|registry| registry.register_collector(Box::new(PoolCollector)));
    Mutex::default()
});

/// Reports `pool`'s connections under `role` until the returned guard is dropped; hold it for as long as the
/// process uses the pool (an application's run).
pub fn watch(role: &'static str, pool: &PgPool) -> PoolWatch {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    pools().insert(id, (role, pool.clone()));
    PoolWatch { id }
}

fn pools() -> std::sync::MutexGuard<'static, HashMap<u64, (&'static str, PgPool)>> {
    POOLS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a pool in the metrics; dropping it takes the pool out (and lets it close).
#[derive(Debug)]
#[must_use = "the pool leaves the metrics when this is dropped"]
pub struct PoolWatch {
    id: u64,
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        pools().remove(&self.id);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

/// Connections per role: (open, idle, most).
fn sample() -> BTreeMap<&'static str, (u64, u64, u64)> {
    let mut roles: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    for (role, pool) in pools().values() {
        let entry = roles.entry(role).or_default();
        entry.0 += u64::from(pool.size());
        entry.1 += pool.num_idle() as u64;
        entry.2 += u64::from(pool.options().get_max_connections());
    }
    roles
}

#[derive(Debug)]
struct PoolCollector;

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (connections, max) =
            (Family::<ConnectionLabels, Gauge>::default(), Family::<PoolLabels, Gauge>::default());
        for (pool, (open, idle, most)) in sample() {
            // Read one after the other, idle can briefly exceed what is open; never report a negative in use.
            let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
            connections
                .get_or_create(&ConnectionLabels { pool, state: "in_use" })
                .set(gauge(open.saturating_sub(idle)));
            connections.get_or_create(&ConnectionLabels { pool, state: "idle" }).set(gauge(idle.min(open)));
            max.get_or_create(&PoolLabels { pool }).set(gauge(most));
        }
        let descriptor = encoder.encode_descriptor(
            "shop_db_pool_connections",
            "Connections the process's Postgres pools hold open, in use or idle",
            None,
            connections.metric_type(),
        )?;
        connections.encode(descriptor)?;
        let descriptor = encoder.encode_descriptor(
            "shop_db_pool_max_connections",
            "The most connections each Postgres pool of the process opens",
            None,
            max.metric_type(),
        )?;
        max.encode(descriptor)
    }
}
