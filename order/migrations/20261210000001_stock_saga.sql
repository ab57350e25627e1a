-- The order saga's stock step: orders naming a product that tracks its stock wait as 'awaiting_stock' (priced)
-- for the catalog's reservation; any order not final may be 'cancelled'. The original checks were unnamed; they
-- are replaced by named ones that know the new statuses.
ALTER TABLE orders
    DROP CONSTRAINT IF EXISTS orders_status_check,
    DROP CONSTRAINT IF EXISTS orders_check,
    DROP CONSTRAINT IF EXISTS orders_check1,
    ADD CONSTRAINT orders_status
        CHECK (status IN ('pending', 'awaiting_stock', 'confirmed', 'rejected', 'cancelled')),
    ADD CONSTRAINT orders_total_when_priced
        CHECK ((status IN ('awaiting_stock', 'confirmed')) = (total_price_cents IS NOT NULL)),
    ADD CONSTRAINT orders_reason_when_rejected CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL));

-- Every step of the order's saga, oldest first: [{"step": "placed", "at": "…", "detail": null}, …]. Orders stored
-- before it was recorded start with none.
ALTER TABLE orders ADD COLUMN history jsonb NOT NULL DEFAULT '[]';

-- True while the order ended (rejected or cancelled) after stock was asked for, and the catalog has not said it
-- released what it held: the compensation still to complete.
ALTER TABLE orders
    ADD COLUMN stock_release_pending boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT orders_release_only_when_ended
        CHECK (NOT stock_release_pending OR status IN ('rejected', 'cancelled'));

-- Orders waiting for stock, for the deadline sweeper; orders whose release is still to complete.
CREATE INDEX orders_awaiting_stock ON orders (updated_at) WHERE status = 'awaiting_stock';
CREATE INDEX orders_release_pending ON orders (id) WHERE stock_release_pending;

-- Whether each product tracks its stock (decided for good when the catalog created it): an order naming one waits
-- for the catalog's reservation. Products projected before this column existed were created before stock existed.
ALTER TABLE product_projection ADD COLUMN tracks_stock boolean NOT NULL DEFAULT false;
