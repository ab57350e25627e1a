//! The order service's SQL. Every function takes the connection (or transaction) to run on; the service decides
//! the transaction boundaries. An order is one `orders` row and its `order_lines`.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use shop_events::{TraceContext, order::OrderStep};
use shop_platform::pagination::Page;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Order, OrderLine, OrderStatus, PlacedBy, PricedProduct};

const ORDER_COLUMNS: &str = "id, account_id, status, total_price_cents, rejection_reason, version, created_at, updated_at, traceparent, placed_by, history, stock_release_pending";

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    account_id: Uuid,
    status: String,
    total_price_cents: Option<i64>,
    rejection_reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    traceparent: Option<String>,
    placed_by: Option<String>,
    history: Json<Vec<OrderStep>>,
    stock_release_pending: bool,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    product_id: Uuid,
    quantity: i32,
    product_name: Option<String>,
    product_description: Option<String>,
    unit_price_cents: Option<i64>,
}

impl OrderRow {
    /// The order, and the trace it was placed under.
    fn into_order(self, lines: Vec<OrderLine>) -> Result<(Order, Option<TraceContext>), sqlx::Error> {
        let status = OrderStatus::parse(&self.status).ok_or_else(|| {
            sqlx::Error::Decode(format!("order {} has status {:?}", self.id, self.status).into())
        })?;
        let trace =
            self.traceparent.as_deref().and_then(|traceparent| TraceContext::parse(traceparent, None).ok());
        let order = Order {
            id: self.id,
            account_id: self.account_id,
            status,
            lines,
            total_price_cents: self.total_price_cents,
            rejection_reason: self.rejection_reason,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            placed_by: PlacedBy::from_customer(self.placed_by),
            history: self.history.0,
            stock_release_pending: self.stock_release_pending,
        };
        Ok((order, trace))
    }
}

impl TryFrom<LineRow> for OrderLine {
    type Error = sqlx::Error;

    fn try_from(row: LineRow) -> Result<Self, Self::Error> {
        let quantity = u32::try_from(row.quantity).map_err(|_| {
            sqlx::Error::Decode(format!("order {} has a negative quantity", row.order_id).into())
        })?;
        // The table's checks make the three product columns null or set together.
        let product = match (row.product_name, row.product_description, row.unit_price_cents) {
            (Some(name), Some(description), Some(unit_price_cents)) => {
                Some(PricedProduct { name, description, unit_price_cents })
            }
            _ => None,
        };
        Ok(Self { product_id: row.product_id, quantity, product })
    }
}

/// Stores a new order with its lines (in one statement for all the lines), and the trace it was placed under.
#[tracing::instrument(skip_all, fields(order_id = %order.id), err)]
pub async fn insert_order(
    connection: &mut PgConnection,
    order: &Order,
    trace: &TraceContext,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(order.id)
    .bind(order.account_id)
    .bind(order.status.as_str())
    .bind(order.total_price_cents)
    .bind(&order.rejection_reason)
    .bind(order.version)
    .bind(order.created_at)
    .bind(order.updated_at)
    .bind(trace.traceparent())
    .bind(order.placed_by.customer())
    .bind(Json(&order.history))
    .bind(order.stock_release_pending)
    .execute(&mut *connection)
    .await?;

    let line_numbers: Vec<i32> = (0..).take(order.lines.len()).collect();
    let product_ids: Vec<Uuid> = order.lines.iter().map(|l| l.product_id).collect();
    let quantities: Vec<i32> = order.lines.iter().map(|l| l.quantity as i32).collect();
    let names: Vec<Option<&str>> = order.lines.iter().map(|l| l.product.as_ref().map(|p| &*p.name)).collect();
    let descriptions: Vec<Option<&str>> =
        order.lines.iter().map(|l| l.product.as_ref().map(|p| &*p.description)).collect();
    let prices: Vec<Option<i64>> =
        order.lines.iter().map(|l| l.product.as_ref().map(|p| p.unit_price_cents)).collect();
    sqlx::query(
        "INSERT INTO order_lines
             (order_id, line_number, product_id, quantity, product_name, product_description, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::int[], $3::uuid[], $4::int[], $5::text[], $6::text[], $7::bigint[])",
    )
    .bind(order.id)
    .bind(line_numbers)
    .bind(product_ids)
    .bind(quantities)
    .bind(names)
    .bind(descriptions)
    .bind(prices)
    .execute(connection)
    .await?;
    Ok(())
}

/// The order with `id`, if there is one.
pub async fn find_order(connection: &mut PgConnection, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<OrderRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let mut orders = with_lines(connection, vec![row]).await?;
    Ok(orders.pop().map(|(order, _)| order))
}

/// One page of each given account's orders, newest first, in two queries whatever the number of accounts. Each
/// account's page is read from the `(account_id, id DESC)` index, never its whole history.
pub async fn orders_for_accounts(
    connection: &mut PgConnection,
    account_ids: &[Uuid],
    page: Page,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT page.* FROM UNNEST($1::uuid[]) AS account (id)
         CROSS JOIN LATERAL (
             SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = account.id AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC OFFSET $2 LIMIT $3
         ) AS page
         ORDER BY page.id DESC"
    )))
    .bind(account_ids)
    .bind(page.skip)
    .bind(page.take)
    .bind(page.after)
    .fetch_all(&mut *connection)
    .await?;
    Ok(with_lines(connection, rows).await?.into_iter().map(|(order, _)| order).collect())
}

/// Up to `limit` pending orders after `after` (by id), locked until the transaction ends; orders another
/// transaction holds are passed over, so concurrent validators never take the same order.
pub async fn lock_pending_orders(
    connection: &mut PgConnection,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Order, Option<TraceContext>)>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND id > $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    with_lines(connection, rows).await
}

/// The order with `id` and the trace it was placed under, locked until the transaction ends, so that one
/// transition at a time is decided from its current state.
pub async fn lock_order(
    connection: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(Order, Option<TraceContext>)>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_all(&mut *connection)
    .await?;
    Ok(with_lines(connection, rows).await?.pop())
}

/// Up to `limit` orders that have awaited stock since before `before`, locked until the transaction ends; orders
/// another transaction holds are passed over, so that of several replicas only one times each order out.
pub async fn lock_orders_awaiting_stock_since(
    connection: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Order, Option<TraceContext>)>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'awaiting_stock' AND updated_at < $1
         ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    with_lines(connection, rows).await
}

/// The ids of up to `limit` orders whose stock release is still to complete, ended before `before`, oldest first.
pub async fn orders_owing_a_release(
    connection: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE stock_release_pending AND updated_at < $1 ORDER BY updated_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(connection)
    .await
}

/// The first `limit` orders whose id is above `after` (from the first with `None`), in id order, with their lines,
/// held `FOR SHARE` until the transaction ends, so that no transition of them commits before it does (the
/// validator, which skips locked orders, takes them up afterwards).
pub async fn share_orders_after(
    connection: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2 FOR SHARE"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    Ok(with_lines(connection, rows).await?.into_iter().map(|(order, _)| order).collect())
}

/// What the order database holds that is not done yet, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Orders pending or awaiting stock.
    pub unsettled: i64,
    /// Seconds since the oldest of them was placed (by the database's clock); 0 when there is none.
    pub oldest_unsettled_age_seconds: f64,
    /// Final orders whose stock release the catalog has not confirmed.
    pub releases_owed: i64,
}

/// The [`Backlog`]. Cheap however many orders are final: each condition matches a partial index
/// (`orders_pending`, `orders_awaiting_stock`, `orders_release_pending`), so only the rows not done are read.
///
/// Planned again at every read (an unnamed statement), not prepared once per connection: a connection prepares it
/// in the service's first seconds, when `orders` is empty and a sequential scan is the cheapest plan, and Postgres
/// replans a prepared statement only once the table is analyzed again. Where nothing analyzes it (autovacuum
/// off, or not come by yet), the kept plan would read every order at every refresh of the metrics.
pub async fn backlog(connection: &mut PgConnection) -> Result<Backlog, sqlx::Error> {
    let (unsettled, oldest_unsettled_age_seconds, releases_owed): (i64, f64, i64) = sqlx::query_as(
        "SELECT count(*),
                COALESCE(extract(epoch FROM now() - min(created_at))::float8, 0),
                (SELECT count(*) FROM orders WHERE stock_release_pending)
         FROM (SELECT created_at FROM orders WHERE status = 'pending'
               UNION ALL
               SELECT created_at FROM orders WHERE status = 'awaiting_stock') AS unsettled",
    )
    .persistent(false)
    .fetch_one(connection)
    .await?;
    Ok(Backlog { unsettled, oldest_unsettled_age_seconds, releases_owed })
}

/// Stores an order's transition: its status, total, reason, version, history, release owed, and the pricing of
/// its lines.
#[tracing::instrument(skip_all, fields(order_id = %order.id, version = order.version), err)]
pub async fn update_order(connection: &mut PgConnection, order: &Order) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, total_price_cents = $3, rejection_reason = $4, version = $5, updated_at = $6,
                           history = $7, stock_release_pending = $8
         WHERE id = $1",
    )
    .bind(order.id)
    .bind(order.status.as_str())
    .bind(order.total_price_cents)
    .bind(&order.rejection_reason)
    .bind(order.version)
    .bind(order.updated_at)
    .bind(Json(&order.history))
    .bind(order.stock_release_pending)
    .execute(&mut *connection)
    .await?;

    let line_numbers: Vec<i32> = (0..).take(order.lines.len()).collect();
    let names: Vec<Option<&str>> = order.lines.iter().map(|l| l.product.as_ref().map(|p| &*p.name)).collect();
    let descriptions: Vec<Option<&str>> =
        order.lines.iter().map(|l| l.product.as_ref().map(|p| &*p.description)).collect();
    let prices: Vec<Option<i64>> =
        order.lines.iter().map(|l| l.product.as_ref().map(|p| p.unit_price_cents)).collect();
    sqlx::query(
        "UPDATE order_lines AS line
         SET product_name = priced.name, product_description = priced.description,
             unit_price_cents = priced.price
         FROM UNNEST($2::int[], $3::text[], $4::text[], $5::bigint[]) AS priced (line_number, name, description, price)
         WHERE line.order_id = $1 AND line.line_number = priced.line_number",
    )
    .bind(order.id)
    .bind(line_numbers)
    .bind(names)
    .bind(descriptions)
    .bind(prices)
    .execute(connection)
    .await?;
    Ok(())
}

/// Loads the lines of `rows` in one query and assembles the orders (with their traces), keeping the order of
/// `rows`.
async fn with_lines(
    connection: &mut PgConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<(Order, Option<TraceContext>)>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let line_rows: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, product_id, quantity, product_name, product_description, unit_price_cents
         FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_number",
    )
    .bind(&ids)
    .fetch_all(connection)
    .await?;

    let mut lines: HashMap<Uuid, Vec<OrderLine>> = HashMap::with_capacity(rows.len());
    for row in line_rows {
        lines.entry(row.order_id).or_default().push(row.try_into()?);
    }
    rows.into_iter()
        .map(|row| {
            let order_lines = lines.remove(&row.id).unwrap_or_default();
            row.into_order(order_lines)
        })
        .collect()
}

/// Claims `key` of `account_id` for `order_id`, placed by the request with `fingerprint`; `false` when the key is
/// already claimed (by a committed transaction: a concurrent one holding it makes this wait for its outcome). A key
/// claimed more than `ttl` ago is expired, even if the cleanup has not deleted it yet: it is claimed anew.
pub async fn claim_idempotency_key(
    connection: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    fingerprint: &str,
    order_id: Uuid,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    // On an expired row, the update waits for any transaction holding it, then checks the row as it committed:
    // of two attempts taking over one expired key, the second finds it fresh and claims nothing.
    let claimed = sqlx::query(
        "INSERT INTO order_idempotency_keys (account_id, key, request, order_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (account_id, key) DO UPDATE
             SET request = EXCLUDED.request, order_id = EXCLUDED.order_id, created_at = EXCLUDED.created_at
             WHERE order_idempotency_keys.created_at < now() - make_interval(secs => $5)",
    )
    .bind(account_id)
    .bind(key)
    .bind(fingerprint)
    .bind(order_id)
    .bind(ttl.as_secs_f64())
    .execute(connection)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// The order `key` of `account_id` placed, and the fingerprint of the request that placed it, unless the key was
/// claimed more than `ttl` ago (expired, whether or not the cleanup has deleted it yet).
pub async fn idempotency_key_owner(
    connection: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    ttl: Duration,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, request FROM order_idempotency_keys
         WHERE account_id = $1 AND key = $2 AND created_at >= now() - make_interval(secs => $3)",
    )
    .bind(account_id)
    .bind(key)
    .bind(ttl.as_secs_f64())
    .fetch_optional(connection)
    .await
}

/// Deletes at most `limit` keys claimed more than `ttl` ago (by the database's clock, as they were claimed);
/// returns how many.
pub async fn delete_expired_idempotency_keys(
    connection: &mut PgConnection,
    ttl: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        // `created_at` again outside: a key claimed anew meanwhile (a new row version) is checked as it is now.
        "DELETE FROM order_idempotency_keys
         WHERE created_at < now() - make_interval(secs => $1) AND ctid IN (
             SELECT ctid FROM order_idempotency_keys
             WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(ttl.as_secs_f64())
    .bind(limit)
    .execute(connection)
    .await?;
    Ok(deleted.rows_affected())
}
