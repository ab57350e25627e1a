//! The shop's event contract, shared by every service, the relay and every consumer.
//!
//! - [`envelope`]: [`Envelope`], the metadata every event travels with (one outbox row = one Kafka record), and
//!   [`DomainEvent`], the trait every payload implements.
//! - [`account`], [`catalog`], [`order`]: the payload types, each carrying the entity's full state, so that a
//!   replay of a compacted topic from offset 0 rebuilds any projection.
//! - [`stock`]: the catalog's stock reservations, one per order: the saga's answers (reserved, rejected) and its
//!   compensation (released).
//! - [`topics`]: topic names and the settings each topic needs.
//! - [`cloudevents`]: the Kafka record headers an event travels with (CloudEvents 1.0 binary mode).
//! - [`trace`]: the W3C trace context carried from the request that caused an event to its consumers.
//! - [`heartbeat`]: the relay's promise, per outbox, that every event committed before a time is on Kafka.
//! - [`republish`]: the record of a completed republish of an entity topic (the current state of every entity
//!   appended again, as `*.republished.v1` events), which tells a rebuild that lost history was refilled.
//!
//! Everything here is a plain, serialisable type: no database, no Kafka client. Writing events is `shop-outbox`'s
//! job, publishing them the relay's, and consuming them `shop-projection`'s.
//!
//! A published event never changes. A new shape is a new event type version (`shop.order.placed.v2`), and
//! consumers keep accepting the old ones.

pub mod account;
pub mod catalog;
pub mod cloudevents;
pub mod envelope;
pub mod heartbeat;
pub mod order;
pub mod republish;
pub mod stock;
pub mod topics;
pub mod trace;

pub use envelope::{AggregateType, DecodeError, DomainEvent, Envelope, EventType};
pub use trace::TraceContext;
