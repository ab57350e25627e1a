-- projection_skipped is the projections' dead-letter table: records passed over because they cannot be decoded or
-- break their event's invariants (attempts = 0), and records whose application kept failing with a data error
-- (attempts = how many times it was tried). The key finds the entity; topic, partition and offset find the record.
ALTER TABLE projection_skipped ADD COLUMN key bytea, ADD COLUMN attempts integer NOT NULL DEFAULT 0;
