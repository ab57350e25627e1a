-- Which log a stored position was taken on, so that a consumer can tell, before it goes on from a position, that
-- the topic was deleted and created again, regrew past the position, or now lives on another cluster: the
-- cluster's id, and the id (`ce_id`) of the last record applied, at offset next_offset - 1.
ALTER TABLE projection_offsets ADD COLUMN cluster_id text, ADD COLUMN last_record_id text;
