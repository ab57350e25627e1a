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
//!   shares; a dead instance's shards move within the lease time. A shard changes hands only behind a barrier, so
//!   a stale version can never land after a newer one (see [`relay`]).
//! - **It heals.** A broken producer is replaced; an instance that cannot publish within its lease gives its
//!   shards to the others and says so in `/health/ready`; a record that concerns one aggregate (refused, or bound
//!   for a missing topic) holds back that aggregate only.
//! - **Low latency.** Every committing outbox write sends a `NOTIFY`; the relay listens, and polls slowly as a
//!   fallback. Under load it reads and sends full batches back to back.
//! - **Heartbeats.** Each outbox's watermark (every event committed before it is on Kafka) goes to
//!   `shop.outbox-heartbeats.v1`, so consumers can tell "does not exist" from "not here yet".
//!
//! Layout:
//! - [`config`]: the settings.
//! - [`startup`]: [`Application`](startup::Application): one supervised worker per outbox, and the server of
//!   `/metrics`, `/health` and `/health/ready`.
//! - [`worker`]: one outbox's tasks: the loop, the leases, the commit listener, housekeeping.
//! - [`relay`]: the publishing loop: read, send, await acknowledgements (within the lease), record.
//! - `heartbeat`: the outbox's heartbeat, published between batches.
//! - [`leases`]: sharing an outbox between instances.
//! - [`store`]: the relay's SQL.
//! - [`kafka`]: the producer, record headers, topic creation, error classification.
//! - [`metrics`]: Prometheus metrics.
//! - `pacing`: spacing out the work whose cost grows with the backlog.

pub mod config;
mod heartbeat;
pub mod kafka;
pub mod leases;
pub mod metrics;
mod pacing;
pub mod relay;
pub mod startup;
pub mod store;
pub mod worker;
