CREATE TABLE orders (
    -- UUIDv7: ordering by id is ordering by placement time.
    id                uuid        PRIMARY KEY,
    account_id        uuid        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
    -- Set once the order is priced.
    total_price_cents bigint      CHECK (total_price_cents >= 0),
    rejection_reason  text,
    version           bigint      NOT NULL CHECK (version > 0),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK ((status = 'confirmed') = (total_price_cents IS NOT NULL)),
    CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL))
);

-- An account's orders, newest first.
CREATE INDEX orders_by_account ON orders (account_id, id DESC);

CREATE TABLE order_lines (
    order_id            uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The line's place in the order, from 0.
    line_number         integer NOT NULL CHECK (line_number >= 0),
    product_id          uuid    NOT NULL,
    quantity            integer NOT NULL CHECK (quantity > 0),
    -- The product as priced for this order; all null until then.
    product_name        text,
    product_description text,
    unit_price_cents    bigint  CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_number),
    -- Repeated products are merged into one line when the order is placed.
    UNIQUE (order_id, product_id),
    CHECK ((product_name IS NULL) = (unit_price_cents IS NULL)
       AND (product_name IS NULL) = (product_description IS NULL))
);
