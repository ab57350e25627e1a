//! Reserving and releasing an order's stock inside a caller's transaction: the saga consumer passes the one that
//! also stores its offsets, the gRPC service one of its own. Each change appends its events to the outbox in that
//! transaction: `shop.product.updated.v1` for every product whose stock moved, then the reservation's
//! `shop.stock.reserved.v1`, `shop.stock.rejected.v1` or `shop.stock.released.v1`. A request that changes
//! nothing appends nothing.
//!
//! Locks are always taken products first, in id order, then the reservation's row: every transaction that touches
//! stock takes them in that order, so they queue instead of deadlocking. The order id is the idempotency key: the
//! reservation's primary key lets exactly one request per order decide.

use shop_events::{Envelope, TraceContext, catalog::ProductUpdated};
use shop_outbox as outbox;
use sqlx::PgTransaction;
use uuid::Uuid;

use super::repository;
use crate::{
    domain::{Decision, Product, Release, Reservation, StockRequest},
    repository::{lock_products, update_product},
};

/// An order's reservation after a request, and whether that request changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reservation: Reservation,
    /// False when the reservation was already decided (or released) and the request was answered with it.
    pub changed: bool,
}

/// Reserves every line of `request` for `order_id`, or none; or, when the order has a reservation already (decided
/// earlier, by a concurrent request, or released first), answers with it unchanged, whatever lines it names.
#[tracing::instrument(skip_all, fields(order_id = %order_id, status), err)]
pub async fn reserve(
    transaction: &mut PgTransaction<'_>,
    order_id: Uuid,
    request: &StockRequest,
    trace: Option<&TraceContext>,
) -> Result<Answer, sqlx::Error> {
    if let Some(reservation) = repository::find_reservation(transaction, order_id).await? {
        return Ok(unchanged(reservation));
    }
    let locked = lock_products(transaction, &request.product_ids()).await?;
    let (reservation, moved) = match Reservation::decide(order_id, request, locked) {
        Decision::Reserved { reservation, event, products } => {
            if !repository::insert_reservation(transaction, &reservation).await? {
                return decided_meanwhile(transaction, order_id).await;
            }
            let moved = store_products(transaction, &products, trace).await?;
            outbox::append(transaction, &Envelope::new(&event, trace)).await?;
            (reservation, moved)
        }
        Decision::Rejected { reservation, event } => {
            if !repository::insert_reservation(transaction, &reservation).await? {
                return decided_meanwhile(transaction, order_id).await;
            }
            outbox::append(transaction, &Envelope::new(&event, trace)).await?;
            (reservation, 0)
        }
    };
    tracing::Span::current().record("status", reservation.status.as_str());
    tracing::info!(
        order_id = %order_id, status = reservation.status.as_str(), products_moved = moved,
        "Decided a stock reservation."
    );
    Ok(Answer { reservation, changed: true })
}

/// Releases what is held for `order_id`: a reservation gives back exactly what it held (a rejected one nothing),
/// and a release that comes before any request leaves a released reservation, so that nothing is held for the
/// order later. Releasing again changes nothing.
#[tracing::instrument(skip_all, fields(order_id = %order_id), err)]
pub async fn release(
    transaction: &mut PgTransaction<'_>,
    order_id: Uuid,
    trace: Option<&TraceContext>,
) -> Result<Answer, sqlx::Error> {
    // Products first: look without locking at what the reservation holds, lock those products, then its row.
    let held = held_products(repository::find_reservation(transaction, order_id).await?.as_ref());
    let mut locked = lock_products(transaction, &held).await?;
    let mut reservation = match repository::lock_reservation(transaction, order_id).await? {
        Some(reservation) => reservation,
        None => {
            let (reservation, event) = Reservation::released_unrequested(order_id);
            if repository::insert_reservation(transaction, &reservation).await? {
                outbox::append(transaction, &Envelope::new(&event, trace)).await?;
                tracing::info!(order_id = %order_id, "Released stock before any request: nothing will be held.");
                return Ok(Answer { reservation, changed: true });
            }
            // A request decided between the look and the insert, which waited for it to commit.
            repository::lock_reservation(transaction, order_id).await?.ok_or(sqlx::Error::RowNotFound)?
        }
    };
    let now_held = held_products(Some(&reservation));
    if now_held != held {
        // Decided after the first look: rare enough that locking these products out of turn is acceptable. Should
        // it ever deadlock, Postgres aborts one transaction, and its caller tries again (the saga's runner retries
        // its batch, the gRPC service its transaction).
        locked = lock_products(transaction, &now_held).await?;
    }
    let Release::Released { event, products } = reservation.release(locked) else {
        return Ok(unchanged(reservation));
    };
    repository::update_reservation(transaction, &reservation).await?;
    let moved = store_products(transaction, &products, trace).await?;
    outbox::append(transaction, &Envelope::new(&event, trace)).await?;
    tracing::info!(order_id = %order_id, products_moved = moved, "Released a stock reservation.");
    Ok(Answer { reservation, changed: true })
}

fn unchanged(reservation: Reservation) -> Answer {
    Answer { reservation, changed: false }
}

/// The answer when a concurrent request stored the order's reservation first: that one.
async fn decided_meanwhile(
    transaction: &mut PgTransaction<'_>,
    order_id: Uuid,
) -> Result<Answer, sqlx::Error> {
    let reservation =
        repository::find_reservation(transaction, order_id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok(unchanged(reservation))
}

/// The products a reservation holds units of, in id order; none when it holds nothing.
fn held_products(reservation: Option<&Reservation>) -> Vec<Uuid> {
    reservation
        .filter(|reservation| reservation.held())
        .map(|reservation| reservation.lines.iter().map(|line| line.product_id).collect())
        .unwrap_or_default()
}

/// Stores the products whose stock moved and appends their events; returns how many there were.
async fn store_products(
    transaction: &mut PgTransaction<'_>,
    products: &[(Product, ProductUpdated)],
    trace: Option<&TraceContext>,
) -> Result<usize, sqlx::Error> {
    for (product, updated) in products {
        update_product(transaction, product).await?;
        outbox::append(transaction, &Envelope::new(updated, trace)).await?;
    }
    Ok(products.len())
}
