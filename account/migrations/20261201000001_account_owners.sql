-- Who owns an account: the subject of the identity that opened it (PostAccount with the caller's identity
-- metadata). NULL for an account opened without one, as every account opened before owners existed stays.
ALTER TABLE accounts
    ADD COLUMN owner text CHECK (owner <> '' AND char_length(owner) <= 255);

-- One account per identity (sign-up), enforced here rather than by a look-up first, which two concurrent
-- sign-ups would both pass; also the index of GetAccounts' owner filter.
CREATE UNIQUE INDEX accounts_owner ON accounts (owner) WHERE owner IS NOT NULL;
