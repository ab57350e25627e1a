CREATE TABLE products (
    -- UUIDv7: ordering by id is ordering by creation time.
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text        NOT NULL CHECK (char_length(description) <= 5000),
    price_cents bigint      NOT NULL CHECK (price_cents >= 0),
    version     bigint      NOT NULL CHECK (version > 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- Full-text search document: a match in the name weighs more than one in the description.
    search      tsvector    GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')
                ) STORED
);

CREATE INDEX products_search ON products USING gin (search);
