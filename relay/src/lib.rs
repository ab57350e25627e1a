//! The outbox relay: forwards the transactional outbox of every service database to Kafka.
//!
//! What it guarantees, and how:
//! - **No committed event is ever skipped.** There is no read cursor to move past a slow transaction: every read
//!   takes the oldest unpublished rows, and a row stays unpublished until Kafka acknowledged it.
//! - **Per aggregate, events reach the topic in version order**, keyed by aggregate id: rows are sent in outbox
//!   order, by an idempotent producer (`acks=all`) with the gapless guarantee, and a row Kafka refuses for good
//!   parks its aggregate (the later events of that aggregate wait) while every other aggregate flows on.
//! - **At least once.** A crash between the acknowledgement and the bookkeeping sends rows again; consumers
//!   deduplicate by `(aggregate id, version)` or `ce_id`.
//! - **Several instances at once.** Aggregates are spread over 64 shards, leased to the live instances in fair
//!   shares; a dead instance's shards move within the lease time.
//! - **Low latency.** Every committing outbox write sends a `NOTIFY`; the relay listens, and polls slowly as a
//!   fallback. Under load it reads and sends full batches back to back.
//!
//! Layout:
//! - [`config`]: the settings.
//! - [`startup`]: [`Application`](startup::Application): one worker per outbox, and the `/metrics` server.
//! - [`worker`]: one outbox's tasks: the loop, the leases, the commit listener, housekeeping.
//! - [`relay`]: the publishing loop: read, send, await acknowledgements, record.
//! - [`leases`]: sharing an outbox between instances.
//! - [`store`]: the relay's SQL.
//! - [`kafka`]: the producer, record headers, topic creation, error classification.
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod kafka;
pub mod leases;
pub mod metrics;
pub mod relay;
pub mod startup;
pub mod store;
pub mod worker;
