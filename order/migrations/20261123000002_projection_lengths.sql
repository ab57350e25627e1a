-- The rest of the owners' rules on the projection tables: names and descriptions no longer than the account and
-- catalog services let them be (their own tables check the same lengths). Decoding already refuses longer ones;
-- these are the last line, should a projection ever be fed by another path. NOT VALID, as in the migration before.
ALTER TABLE product_projection
    ADD CONSTRAINT product_projection_name_length CHECK (char_length(name) <= 200) NOT VALID,
    ADD CONSTRAINT product_projection_description_length CHECK (char_length(description) <= 5000) NOT VALID;

ALTER TABLE account_projection
    ADD CONSTRAINT account_projection_name_length CHECK (char_length(name) <= 100) NOT VALID;
