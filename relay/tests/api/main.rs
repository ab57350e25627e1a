//! The relay against a real Postgres and a real Kafka-protocol broker: librdkafka's mock cluster in this process
//! by default, or the broker at `KAFKA_BROKERS`. Every test reads its topic back and checks, per key, that the
//! first copies of the versions arrive in order with no gap and that every committed event arrived.

mod delivery;
mod failures;
mod handover;
mod helpers;
mod housekeeping;
mod pipelining;
mod plans;
mod sharing;
