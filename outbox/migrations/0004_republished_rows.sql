-- Republishing: a service may append an entity's current state again (`shop.*.republished.v1`), at the version the
-- entity already has, so that a topic whose first records were deleted holds every entity again. Such a row repeats
-- the (aggregate_id, aggregate_version) of the row that first recorded that version, which may still be in the
-- table (unpublished, or kept for RELAY_RETENTION_SECS). The uniqueness that makes two writers racing for one
-- version fail therefore holds for the rows that record changes only.
--
-- The relay needs nothing new: it publishes an aggregate's rows in position order, and never compares versions, so a
-- republished row goes out after the original it repeats. Debezium's Outbox Event Router ignores the column; the
-- event type tells the records apart on Kafka.
ALTER TABLE outbox ADD COLUMN republished boolean NOT NULL DEFAULT false;

ALTER TABLE outbox DROP CONSTRAINT outbox_aggregate_id_aggregate_version_key;

-- Not CONCURRENTLY (migrations run in a transaction): writes to the outbox wait while it is built, which is quick,
-- as the relay keeps the table to the rows not yet published (or kept for the retention time).
CREATE UNIQUE INDEX outbox_aggregate_version ON outbox (aggregate_id, aggregate_version) WHERE NOT republished;
