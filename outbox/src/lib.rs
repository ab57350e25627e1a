//! The transactional outbox: the table every service writes its events to, and [`append`], which writes one
//! inside the caller's transaction.
//!
//! The outbox has its own migrations (tracked in [`MIGRATIONS_TABLE`], apart from the service's own), so every
//! service database gets the same table, and the relay can bring it up to date without knowing any service. They
//! include the relay's bookkeeping (shard leases, parked aggregates, the commit notification), which lives beside
//! the rows it is about.
//!
//! The table maps onto Debezium's Outbox Event Router (`event_id`, `aggregate_type`, `aggregate_id`,
//! `event_type`, `payload`), so an operator may replace the relay with log-based change data capture.
//!
//! [`republish`] appends the current state of every entity of a service again, in batches, for the consumers of a
//! topic that lost its first records.

pub mod republish;

use sqlx::{
    PgPool, PgTransaction,
    migrate::{MigrateError, Migrator},
};

use shop_events::Envelope;

/// The channel a commit that wrote to the outbox notifies (by a trigger on the table), waking the relay.
pub const NOTIFY_CHANNEL: &str = "shop_outbox";

/// The number of relay shards; an aggregate's shard is the last byte of its id modulo this.
pub const SHARD_COUNT: i16 = 64;

/// The table that records which outbox migrations a database has applied.
pub const MIGRATIONS_TABLE: &str = "_shop_outbox_migrations";

/// The outbox's migrations, tracked apart from the service's own (in [`MIGRATIONS_TABLE`]).
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Creates or updates the outbox table. Safe to run concurrently from several processes (sqlx takes an advisory
/// lock) and on every start.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().run(pool).await
}

/// Writes `envelope` to the outbox inside `transaction`, so the event is committed if and only if the domain
/// change it describes is.
///
/// Writers must append an aggregate's versions in order, each after the previous one committed (lock the
/// aggregate's row first): the relay publishes an aggregate's events in the order they were appended. Appending a
/// version that already exists fails with a unique violation (SQLSTATE 23505), which callers report as a
/// conflict.
///
/// The commit also notifies [`NOTIFY_CHANNEL`] (a trigger on the table does it), so the relay wakes at once.
///
/// When traces are exported, the row carries the context of the span it is written in (the transaction's, see
/// [`shop_platform::trace::transaction_span`]) rather than the envelope's, so the relay's send is that span's
/// child; otherwise the envelope's.
pub async fn append(transaction: &mut PgTransaction<'_>, envelope: &Envelope) -> Result<(), sqlx::Error> {
    let trace = shop_platform::trace::current().or_else(|| envelope.trace.clone());
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic,
                             payload, occurred_at, traceparent, tracestate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(envelope.event_id)
    .bind(&envelope.aggregate_type)
    .bind(envelope.aggregate_id)
    .bind(envelope.aggregate_version)
    .bind(&envelope.event_type)
    .bind(&envelope.topic)
    .bind(&envelope.payload)
    .bind(envelope.occurred_at)
    .bind(trace.as_ref().map(|trace| trace.traceparent()))
    .bind(trace.as_ref().and_then(|trace| trace.tracestate()))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Writes `envelopes`, each an entity's current state at the version it already has (a `*.republished.v1`
/// event), inside `transaction`, in one statement and in the given order; returns the positions they took. Unlike
/// [`append`], a version already in the outbox is no conflict: these rows repeat one on purpose. The caller holds
/// the entities' rows (`FOR SHARE`) until the commit, so no change of them is appended in between: each row goes out
/// after the version it repeats and before any later one.
pub async fn append_republished(
    transaction: &mut PgTransaction<'_>,
    envelopes: &[Envelope],
) -> Result<Vec<i64>, sqlx::Error> {
    let texts = |value: fn(&Envelope) -> &str| envelopes.iter().map(value).collect::<Vec<_>>();
    let traces = envelopes.iter().map(|envelope| envelope.trace.as_ref());
    sqlx::query_scalar(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic,
                             payload, occurred_at, traceparent, tracestate, republished)
         SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic, payload, occurred_at,
                traceparent, tracestate, true
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::jsonb[],
                     $8::timestamptz[], $9::text[], $10::text[])
              WITH ORDINALITY AS given (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic,
                                        payload, occurred_at, traceparent, tracestate, ordinal)
         ORDER BY ordinal
         RETURNING position",
    )
    .bind(envelopes.iter().map(|envelope| envelope.event_id).collect::<Vec<_>>())
    .bind(texts(|envelope| &envelope.aggregate_type))
    .bind(envelopes.iter().map(|envelope| envelope.aggregate_id).collect::<Vec<_>>())
    .bind(envelopes.iter().map(|envelope| envelope.aggregate_version).collect::<Vec<_>>())
    .bind(texts(|envelope| &envelope.event_type))
    .bind(texts(|envelope| &envelope.topic))
    .bind(envelopes.iter().map(|envelope| envelope.payload.clone()).collect::<Vec<_>>())
    .bind(envelopes.iter().map(|envelope| envelope.occurred_at).collect::<Vec<_>>())
    .bind(traces.clone().map(|trace| trace.map(|trace| trace.traceparent())).collect::<Vec<_>>())
    .bind(traces.map(|trace| trace.and_then(|trace| trace.tracestate())).collect::<Vec<_>>())
    .fetch_all(&mut **transaction)
    .await
}
