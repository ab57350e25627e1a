-- What the relay needs to forward the outbox to Kafka: which rows are published, how the work is split between
-- relay instances, which aggregates are parked, and a wake-up on every commit.

-- Published rows are deleted by the relay, or (with a retention) marked here and deleted later in batches.
ALTER TABLE outbox ADD COLUMN published_at timestamptz;

-- Aggregates are spread over a fixed 64 shards by the last byte of their id (random in UUIDv7 and v4). Relay
-- instances lease shards, so one aggregate is read by one instance at a time. Derived from the id alone, so every
-- version of an aggregate lands in the same shard.
ALTER TABLE outbox ADD COLUMN shard smallint NOT NULL
    GENERATED ALWAYS AS ((get_byte(uuid_send(aggregate_id), 15) % 64)::smallint) STORED;

-- The relay reads unpublished rows in insertion order.
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
-- Retention clean-up finds published rows by age.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- One row per shard: who holds its lease, until when, and an epoch that grows with every new holder.
CREATE TABLE outbox_relay_shards (
    shard            smallint    PRIMARY KEY CHECK (shard BETWEEN 0 AND 63),
    owner            uuid,
    epoch            bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO outbox_relay_shards (shard) SELECT generate_series(0, 63);

-- Relay instances that are alive (heartbeat within the lease time); each takes its fair share of the shards.
CREATE TABLE outbox_relay_instances (
    instance_id  uuid        PRIMARY KEY,
    hostname     text        NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

-- Aggregates whose next event Kafka refused for good (too large, invalid). Their events wait here until an
-- operator fixes or removes the poison row and deletes the parked entry; every other aggregate flows on.
CREATE TABLE outbox_parked (
    aggregate_id uuid        PRIMARY KEY,
    position     bigint      NOT NULL,
    event_id     uuid        NOT NULL,
    reason       text        NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now()
);

-- Wake the relay when an outbox write commits. A statement trigger fires once per INSERT, and Postgres folds
-- identical notifications of one transaction into one, delivered at commit (never for a rolled-back write).
-- Notifying transactions serialize briefly at commit; a write-heavy deployment may prefer the relay's poll alone:
-- ALTER TABLE outbox DISABLE TRIGGER outbox_notify.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shop_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
