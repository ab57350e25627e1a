-- Stock, for the products that track it (decided when a product is created: both columns NULL means untracked,
-- which is unlimited). `stock` is what is available to order; `stock_received` counts every unit ever received
-- (the initial stock plus every adjustment, write-offs negative), so that, per product, at every commit:
--     stock_received = stock + the units held by reservations (see stock_ledger below).
ALTER TABLE products
    ADD COLUMN stock          bigint NULL CHECK (stock >= 0),
    ADD COLUMN stock_received bigint NULL,
    ADD CONSTRAINT products_stock_tracked CHECK ((stock IS NULL) = (stock_received IS NULL)),
    ADD CONSTRAINT products_stock_received CHECK (stock_received >= stock);

-- One reservation per order: the order id is the idempotency key, and the primary key makes two concurrent
-- requests for one order take turns (the second's insert waits for the first's commit, then does nothing).
CREATE TABLE stock_reservations (
    order_id   uuid        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('reserved', 'rejected', 'released')),
    -- Whether the lines are held now: exactly while reserved.
    held       boolean     NOT NULL,
    -- Every line short of stock, as [{product_id, requested, available}], when rejected; [] otherwise.
    shortages  jsonb       NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT stock_reservations_held CHECK (held = (status = 'reserved')),
    CONSTRAINT stock_reservations_shortages CHECK ((status = 'rejected') = (jsonb_array_length(shortages) > 0))
);

-- What each order asked for. No foreign key to products: a line naming an unknown product is a shortage, and is
-- recorded all the same.
CREATE TABLE stock_reservation_lines (
    order_id   uuid   NOT NULL REFERENCES stock_reservations (order_id),
    product_id uuid   NOT NULL,
    quantity   bigint NOT NULL CHECK (quantity BETWEEN 1 AND 4294967295),
    PRIMARY KEY (order_id, product_id)
);

-- Units held per product is one sum over this index.
CREATE INDEX stock_reservation_lines_product ON stock_reservation_lines (product_id);

-- Per tracked product: what it received, what is available, what reservations hold. `balanced` is the invariant.
CREATE VIEW stock_ledger AS
SELECT p.id AS product_id,
       p.stock_received AS received,
       p.stock AS available,
       coalesce(h.held, 0)::bigint AS held,
       p.stock_received = p.stock + coalesce(h.held, 0) AS balanced
FROM products p
LEFT JOIN (
    SELECT l.product_id, sum(l.quantity) AS held
    FROM stock_reservation_lines l
    JOIN stock_reservations r USING (order_id)
    WHERE r.held
    GROUP BY l.product_id
) h ON h.product_id = p.id
WHERE p.stock IS NOT NULL;
