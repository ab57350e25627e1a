//! The catalog use cases. The service owns the transaction boundary: a product row and its outbox event are
//! committed together or not at all; so are a stock reservation, the stock it moves and their events.

use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::{ServiceError, pagination::Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::{Product, ProductChange, ProductDetails, Reservation, Stock, StockDelta, StockRequest},
    repository::{self, ProductFilter},
    search::ProductIndex,
    stock::reservations,
};

/// A step of the order saga, for [`CatalogService::in_own_transaction`].
#[derive(Debug, Clone, Copy)]
enum StockStep<'a> {
    Reserve(&'a StockRequest),
    Release,
}

/// Whether Postgres aborted the statement to break a deadlock (SQLSTATE 40P01).
fn is_deadlock(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|error| error.code()).is_some_and(|code| code == "40P01")
}

/// The most ids one batch look-up may ask for.
pub const MAX_IDS_PER_CALL: usize = 1_000;

/// What to list: a page of everything, a batch by id, a search, or a combination.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    pub ids: Option<Vec<Uuid>>,
    pub text: Option<String>,
    /// `None` for a batch by id without paging (all of `ids`).
    pub page: Option<Page>,
}

/// The catalog's use cases, over its database.
#[derive(Debug, Clone)]
pub struct CatalogService {
    pool: PgPool,
    /// The Elasticsearch index that answers text queries; `None` for Postgres full-text search.
    index: Option<ProductIndex>,
}

impl CatalogService {
    pub fn new(pool: PgPool, index: Option<ProductIndex>) -> Self {
        Self { pool, index }
    }

    /// Adds a product, tracking its stock from `stock` units when given, and records `ProductCreated` in the
    /// outbox, in one transaction.
    #[tracing::instrument(skip_all, fields(product_id))]
    pub async fn create_product(
        &self,
        details: ProductDetails,
        stock: Option<Stock>,
        trace: &TraceContext,
    ) -> Result<Product, ServiceError> {
        let (product, created) = Product::create(details, stock);
        tracing::Span::current().record("product_id", tracing::field::display(product.id));

        let mut transaction = self.pool.begin().await?;
        repository::insert_product(&mut transaction, &product).await?;
        outbox::append(&mut transaction, &Envelope::new(&created, Some(trace))).await?;
        transaction.commit().await?;

        tracing::info!(product_id = %product.id, "Created a product.");
        Ok(product)
    }

    /// Replaces a product's details and records `ProductUpdated` in the outbox, in one transaction that holds the
    /// product's row lock, so concurrent updates take versions one after the other. With `expected_version`, the
    /// update applies only to that version (optimistic concurrency for read-modify-write clients).
    #[tracing::instrument(skip_all, fields(product_id = %id))]
    pub async fn update_product(
        &self,
        id: Uuid,
        details: ProductDetails,
        expected_version: Option<i64>,
        trace: &TraceContext,
    ) -> Result<Product, ServiceError> {
        let mut transaction = self.pool.begin().await?;
        let mut product = lock_at_version(&mut transaction, id, expected_version).await?;
        if let ProductChange::Updated(updated) = product.update(details) {
            repository::update_product(&mut transaction, &product).await?;
            outbox::append(&mut transaction, &Envelope::new(&updated, Some(trace))).await?;
            transaction.commit().await?;
            tracing::info!(product_id = %id, version = product.version, "Updated a product.");
        }
        Ok(product)
    }

    /// Restocks a product or writes stock off, and records `ProductUpdated`, in one transaction that holds the
    /// product's row lock (reservations take it too, so none moves the stock in between). With
    /// `expected_version`, only from that version.
    #[tracing::instrument(skip_all, fields(product_id = %id))]
    pub async fn adjust_stock(
        &self,
        id: Uuid,
        delta: StockDelta,
        expected_version: Option<i64>,
        trace: &TraceContext,
    ) -> Result<Product, ServiceError> {
        let mut transaction = self.pool.begin().await?;
        let mut product = lock_at_version(&mut transaction, id, expected_version).await?;
        // The product's state refuses it (untracked, or the stock would leave its bounds): FAILED_PRECONDITION.
        let updated = product
            .adjust_stock(delta)
            .map_err(|refusal| ServiceError::FailedPrecondition(format!("product {id} {refusal}")))?;
        repository::update_product(&mut transaction, &product).await?;
        outbox::append(&mut transaction, &Envelope::new(&updated, Some(trace))).await?;
        transaction.commit().await?;
        tracing::info!(
            product_id = %id, delta = delta.units(), version = product.version,
            "Adjusted a product's stock."
        );
        Ok(product)
    }

    /// Reserves an order's stock, all or none, in a transaction of its own; answers with the order's reservation
    /// as it stands when one was decided already (see [`reservations::reserve`]).
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn reserve_stock(
        &self,
        order_id: Uuid,
        request: &StockRequest,
        trace: &TraceContext,
    ) -> Result<Reservation, ServiceError> {
        self.in_own_transaction(order_id, StockStep::Reserve(request), trace).await
    }

    /// Releases what is held for an order, in a transaction of its own (see [`reservations::release`]).
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn release_stock(
        &self,
        order_id: Uuid,
        trace: &TraceContext,
    ) -> Result<Reservation, ServiceError> {
        self.in_own_transaction(order_id, StockStep::Release, trace).await
    }

    /// Runs `step` in a transaction of its own, again should Postgres abort it to break a deadlock: the lock order
    /// makes one all but impossible (see [`reservations`]), and both steps are idempotent, so a retry is safe.
    async fn in_own_transaction(
        &self,
        order_id: Uuid,
        step: StockStep<'_>,
        trace: &TraceContext,
    ) -> Result<Reservation, ServiceError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            let mut transaction = self.pool.begin().await?;
            let answer = match step {
                StockStep::Reserve(request) => {
                    reservations::reserve(&mut transaction, order_id, request, Some(trace)).await
                }
                StockStep::Release => reservations::release(&mut transaction, order_id, Some(trace)).await,
            };
            match answer {
                Ok(answer) => {
                    transaction.commit().await?;
                    return Ok(answer.reservation);
                }
                Err(error) if attempt < ATTEMPTS && is_deadlock(&error) => {
                    tracing::warn!(order_id = %order_id, attempt, "Postgres broke a deadlock; trying again.");
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    pub async fn product(&self, id: Uuid) -> Result<Product, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        repository::find_product(&mut connection, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("product {id} does not exist")))
    }

    /// Lists products, whatever the combination of filters: in one query on Postgres; with Elasticsearch, text
    /// queries first find the ranked ids there, then one query reads those products.
    pub async fn products(&self, query: ProductQuery) -> Result<Vec<Product>, ServiceError> {
        let (skip, limit) = match (query.page, &query.ids) {
            (Some(page), _) => (page.skip, page.take),
            (None, Some(ids)) => (0, ids.len() as i64),
            (None, None) => (0, Page::DEFAULT_TAKE.into()),
        };
        if let (Some(index), Some(text)) = (&self.index, &query.text) {
            let ranked = index.search(text, query.ids.as_deref(), skip, limit).await?;
            let filter = ProductFilter { ids: Some(&ranked), ..ProductFilter::default() };
            let mut connection = self.pool.acquire().await?;
            let mut products =
                repository::list_products(&mut connection, filter, 0, ranked.len() as i64).await?;
            products.sort_by_key(|product| ranked.iter().position(|id| *id == product.id));
            return Ok(products);
        }
        let filter = ProductFilter {
            ids: query.ids.as_deref(),
            query: query.text.as_deref(),
            after: query.page.and_then(|page| page.after),
        };
        let mut connection = self.pool.acquire().await?;
        Ok(repository::list_products(&mut connection, filter, skip, limit).await?)
    }
}

/// Product `id`, its row locked until `transaction` ends: NOT_FOUND when there is none, ABORTED when
/// `expected_version` is set and the product has moved on (optimistic concurrency for read-modify-write clients).
async fn lock_at_version(
    transaction: &mut sqlx::PgTransaction<'_>,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<Product, ServiceError> {
    let product = repository::lock_product(transaction, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("product {id} does not exist")))?;
    if let Some(expected) = expected_version.filter(|expected| *expected != product.version) {
        return Err(ServiceError::Conflict(format!(
            "product {id} is at version {}, not {expected}; read it again and retry",
            product.version
        )));
    }
    Ok(product)
}
