-- Where each projection is in each topic partition. Written in the same transaction as the projection's own
-- tables, so a record is applied exactly once per projection even when Kafka delivers it again.
CREATE TABLE projection_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    -- The offset of the next record to apply.
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Records a projection could not decode: skipped (their offset moves on), kept here to inspect or replay.
CREATE TABLE projection_skipped (
    projection text        NOT NULL,
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    "offset"   bigint      NOT NULL,
    event_type text,
    reason     text        NOT NULL,
    payload    bytea,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition, "offset")
);
