-- The transactional outbox: one row per domain event, written in the same transaction as the domain change it
-- describes, and forwarded to Kafka by the relay.
--
-- The columns map onto Debezium's Outbox Event Router (id = event_id, aggregatetype = aggregate_type,
-- aggregateid = aggregate_id, type = event_type, payload = payload), so an operator may replace the relay with
-- log-based change data capture.
CREATE TABLE outbox (
    -- Insertion order. Not a safe read cursor on its own: a transaction that took a lower position can commit after
    -- one with a higher position.
    position          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
    aggregate_type    text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL CHECK (aggregate_version > 0),
    event_type        text        NOT NULL,
    topic             text        NOT NULL,
    payload           jsonb       NOT NULL,
    occurred_at       timestamptz NOT NULL,
    -- W3C trace context of the request that caused the event.
    traceparent       text,
    tracestate        text,
    -- Two writers racing to append the same version of one aggregate: the second one fails here.
    UNIQUE (aggregate_id, aggregate_version)
);
