-- The order service's own view of accounts and products, fed from shop.accounts.v1 and shop.products.v1, so that
-- orders can be validated and priced while the account and catalog services are down. Each row holds the latest
-- version seen; older events change nothing.
CREATE TABLE account_projection (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE product_projection (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    price_cents bigint      NOT NULL,
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The trace of the request that placed the order, so that the events of its later validation join that trace.
ALTER TABLE orders ADD COLUMN traceparent text;

-- Pending orders, for the validator.
CREATE INDEX orders_pending ON orders (id) WHERE status = 'pending';
