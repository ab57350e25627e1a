//! The SQL of stock reservations: one row per order in `stock_reservations`, its lines in
//! `stock_reservation_lines`. Every function takes the connection (or transaction) to run on.

use chrono::{DateTime, Utc};
use shop_events::stock as events;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Reservation, ReservationStatus, Shortage, StockLine};

#[derive(sqlx::FromRow)]
struct ReservationRow {
    order_id: Uuid,
    status: String,
    /// Stored as events carry them.
    shortages: Json<Vec<events::Shortage>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    product_id: Uuid,
    quantity: i64,
}

/// The reservation for `order_id`, if there is one.
pub async fn find_reservation(
    connection: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    read(connection, order_id, "").await
}

/// The reservation for `order_id`, locked until the transaction ends, so that changes of it take turns.
pub async fn lock_reservation(
    connection: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    read(connection, order_id, " FOR UPDATE").await
}

async fn read(
    connection: &mut PgConnection,
    order_id: Uuid,
    locking: &'static str,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT order_id, status, shortages, version, created_at, updated_at
         FROM stock_reservations WHERE order_id = $1{locking}"
    )))
    .bind(order_id)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT product_id, quantity FROM stock_reservation_lines WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(order_id)
    .fetch_all(connection)
    .await?;
    let invalid =
        |what: &str| sqlx::Error::Decode(format!("stored reservation {order_id} has {what}").into());
    Ok(Some(Reservation {
        order_id: row.order_id,
        status: ReservationStatus::parse(&row.status).ok_or_else(|| invalid("an unknown status"))?,
        lines: lines
            .into_iter()
            .map(|line| {
                let quantity =
                    u32::try_from(line.quantity).map_err(|_| invalid("a quantity out of range"))?;
                Ok(StockLine { product_id: line.product_id, quantity })
            })
            .collect::<Result<_, sqlx::Error>>()?,
        shortages: row
            .shortages
            .0
            .into_iter()
            .map(|s| Shortage { product_id: s.product_id, requested: s.requested, available: s.available })
            .collect(),
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

/// Stores a new reservation with its lines, unless the order has one already: returns whether this one was stored.
/// A concurrent transaction storing one for the same order makes this wait for its end, then store nothing when it
/// committed; so two requests for one order can never both decide.
#[tracing::instrument(skip_all, fields(order_id = %reservation.order_id), err)]
pub async fn insert_reservation(
    connection: &mut PgConnection,
    reservation: &Reservation,
) -> Result<bool, sqlx::Error> {
    let shortages = Json(reservation.to_event_state().shortages);
    let inserted = sqlx::query(
        "INSERT INTO stock_reservations (order_id, status, held, shortages, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(reservation.order_id)
    .bind(reservation.status.as_str())
    .bind(reservation.held())
    .bind(shortages)
    .bind(reservation.version)
    .bind(reservation.created_at)
    .bind(reservation.updated_at)
    .execute(&mut *connection)
    .await?
    .rows_affected()
        == 1;
    if inserted && !reservation.lines.is_empty() {
        let (products, quantities): (Vec<Uuid>, Vec<i64>) =
            reservation.lines.iter().map(|line| (line.product_id, i64::from(line.quantity))).unzip();
        sqlx::query(
            "INSERT INTO stock_reservation_lines (order_id, product_id, quantity)
             SELECT $1, * FROM unnest($2::uuid[], $3::bigint[])",
        )
        .bind(reservation.order_id)
        .bind(products)
        .bind(quantities)
        .execute(connection)
        .await?;
    }
    Ok(inserted)
}

/// Stores a reservation's new status. Its lines never change. The caller holds the lock taken by
/// [`lock_reservation`].
#[tracing::instrument(skip_all, fields(order_id = %reservation.order_id, version = reservation.version), err)]
pub async fn update_reservation(
    connection: &mut PgConnection,
    reservation: &Reservation,
) -> Result<(), sqlx::Error> {
    let shortages = Json(reservation.to_event_state().shortages);
    sqlx::query(
        "UPDATE stock_reservations SET status = $2, held = $3, shortages = $4, version = $5, updated_at = $6
         WHERE order_id = $1",
    )
    .bind(reservation.order_id)
    .bind(reservation.status.as_str())
    .bind(reservation.held())
    .bind(shortages)
    .bind(reservation.version)
    .bind(reservation.updated_at)
    .execute(connection)
    .await?;
    Ok(())
}
