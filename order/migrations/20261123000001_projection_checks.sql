-- The projection holds what the account and catalog services would accept, nothing else: the same rules as their
-- own tables, so that a record no producer of ours could write fails here (and is passed over into the dead-letter
-- table) instead of reaching the validator, whose totals would then break the orders' own CHECKs. NOT VALID: rows
-- already stored are left as they are (a rebuild replaces them); every new row is checked.
ALTER TABLE product_projection
    ADD CONSTRAINT product_projection_price_cents CHECK (price_cents >= 0) NOT VALID,
    ADD CONSTRAINT product_projection_version CHECK (version >= 1) NOT VALID,
    ADD CONSTRAINT product_projection_name CHECK (btrim(name) <> '') NOT VALID;

ALTER TABLE account_projection
    ADD CONSTRAINT account_projection_version CHECK (version >= 1) NOT VALID,
    ADD CONSTRAINT account_projection_name CHECK (btrim(name) <> '') NOT VALID;
