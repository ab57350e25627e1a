-- The keys clients send with an order placement, so that a retry returns the order its first attempt placed
-- instead of placing another. A key belongs to an account; `request` is the placement's fingerprint (account and
-- merged lines), to tell a retry from another order sent under the same key. Claimed in the transaction that
-- inserts the order: two attempts racing with one key meet on the primary key, and the second finds the first's
-- order. Kept for ORDER_IDEMPOTENCY_KEY_TTL_SECONDS, then deleted in the background (by `created_at`).
CREATE TABLE order_idempotency_keys (
    account_id uuid        NOT NULL,
    key        text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request    text        NOT NULL,
    order_id   uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE INDEX order_idempotency_keys_created_at ON order_idempotency_keys (created_at);
