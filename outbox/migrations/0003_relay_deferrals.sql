-- A row whose failure concerns it alone and may heal (its topic is missing, or the relay may not write to it) holds
-- back only its own aggregate, for a while: the aggregate is parked with a time to try again, and every other
-- aggregate flows on. retry_at NULL keeps the old meaning: parked for good, until an operator acts.
ALTER TABLE outbox_parked ADD COLUMN retry_at timestamptz, ADD COLUMN attempts integer NOT NULL DEFAULT 1;
