CREATE TABLE accounts (
    -- UUIDv7: ordering by id is ordering by creation time.
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    version    bigint      NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL
);
