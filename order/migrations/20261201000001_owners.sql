-- Customers may order only for their own account (defence in depth behind the gateway).
--
-- The projection keeps each account's owner from its events: the subject that opened it, NULL for an account
-- opened without an identity. Rows projected before this column existed read as unowned until a rebuild
-- (`order rebuild`) replays them; accounts had no owners before then, so only accounts opened while an older order
-- service ran beside a newer account service can be affected.
ALTER TABLE account_projection
    ADD COLUMN owner text CONSTRAINT account_projection_owner CHECK (owner <> '' AND char_length(owner) <= 255);

-- The customer who placed the order (the subject of their identity), whose account it must be when the validator
-- decides it; NULL when it was placed unrestricted (by staff, or without an identity).
ALTER TABLE orders ADD COLUMN placed_by text;
