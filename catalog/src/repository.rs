//! The catalog service's SQL. Every function takes the connection (or transaction) to run on; the service decides
//! the transaction boundaries.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{Product, ProductDetails, Stock};

const COLUMNS: &str =
    "id, name, description, price_cents, stock, stock_received, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    name: String,
    description: String,
    price_cents: i64,
    stock: Option<i64>,
    stock_received: Option<i64>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ProductRow> for Product {
    type Error = sqlx::Error;

    fn try_from(row: ProductRow) -> Result<Self, Self::Error> {
        let details =
            ProductDetails::parse(&row.name, &row.description, row.price_cents).map_err(|violations| {
                sqlx::Error::Decode(format!("stored product {} is invalid: {violations:?}", row.id).into())
            })?;
        let stock = match (row.stock, row.stock_received) {
            (None, None) => None,
            (Some(available), Some(received)) => {
                Some(Stock::from_stored(available, received).ok_or_else(|| {
                    sqlx::Error::Decode(format!("stored product {} has an invalid stock", row.id).into())
                })?)
            }
            _ => {
                return Err(sqlx::Error::Decode(
                    format!("stored product {} half tracks its stock", row.id).into(),
                ));
            }
        };
        Ok(Self {
            id: row.id,
            details,
            stock,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Which products to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductFilter<'a> {
    /// Only these ids.
    pub ids: Option<&'a [Uuid]>,
    /// Only products matching this web-search query, best match first.
    pub query: Option<&'a str>,
    /// Only products after this id (listings in id order only).
    pub after: Option<Uuid>,
}

#[tracing::instrument(skip_all, fields(product_id = %product.id), err)]
pub async fn insert_product(connection: &mut PgConnection, product: &Product) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (id, name, description, price_cents, stock, stock_received, version, created_at,
                               updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(product.id)
    .bind(product.details.name())
    .bind(product.details.description())
    .bind(product.details.price().cents())
    .bind(product.stock.map(Stock::available))
    .bind(product.stock.map(Stock::received))
    .bind(product.version)
    .bind(product.created_at)
    .bind(product.updated_at)
    .execute(connection)
    .await?;
    Ok(())
}

/// Stores a product's new state, stock included. The caller holds the row lock taken by [`lock_product`] or
/// [`lock_products`].
#[tracing::instrument(skip_all, fields(product_id = %product.id, version = product.version), err)]
pub async fn update_product(connection: &mut PgConnection, product: &Product) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET name = $2, description = $3, price_cents = $4, stock = $5, stock_received = $6,
                             version = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(product.id)
    .bind(product.details.name())
    .bind(product.details.description())
    .bind(product.details.price().cents())
    .bind(product.stock.map(Stock::available))
    .bind(product.stock.map(Stock::received))
    .bind(product.version)
    .bind(product.updated_at)
    .execute(connection)
    .await?;
    Ok(())
}

/// The product with `id`, if there is one.
pub async fn find_product(connection: &mut PgConnection, id: Uuid) -> Result<Option<Product>, sqlx::Error> {
    let row: Option<ProductRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM products WHERE id = $1")))
            .bind(id)
            .fetch_optional(connection)
            .await?;
    row.map(Product::try_from).transpose()
}

/// The product with `id`, locked until the transaction ends, so that concurrent updates take versions one after
/// the other.
pub async fn lock_product(connection: &mut PgConnection, id: Uuid) -> Result<Option<Product>, sqlx::Error> {
    let row: Option<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(connection)
    .await?;
    row.map(Product::try_from).transpose()
}

/// The products among `ids` that exist, locked until the transaction ends. Locks are taken in id order, whoever
/// asks, so that transactions locking overlapping sets of products (reservations, releases, adjustments) wait for
/// one another instead of deadlocking.
pub async fn lock_products(connection: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Product>, sqlx::Error> {
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(ids)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(Product::try_from).collect()
}

/// The first `limit` products whose id is above `after` (from the first with `None`), in id order, held
/// `FOR SHARE` until the transaction ends, so that no update of them commits before it does.
pub async fn share_products_after(
    connection: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2 FOR SHARE"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(Product::try_from).collect()
}

/// Products matching `filter`, best search match first when there is a query, otherwise oldest first.
pub async fn list_products(
    connection: &mut PgConnection,
    filter: ProductFilter<'_>,
    skip: i64,
    limit: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM products"));
    if let Some(query) = filter.query {
        sql.push(", websearch_to_tsquery('english', ").push_bind(query).push(") AS query");
    }
    sql.push(" WHERE true");
    if let Some(ids) = filter.ids {
        sql.push(" AND id = ANY(").push_bind(ids).push(")");
    }
    if let Some(after) = filter.after {
        sql.push(" AND id > ").push_bind(after);
    }
    if filter.query.is_some() {
        sql.push(" AND search @@ query ORDER BY ts_rank(search, query) DESC, id");
    } else {
        sql.push(" ORDER BY id");
    }
    sql.push(" OFFSET ").push_bind(skip).push(" LIMIT ").push_bind(limit);

    let rows: Vec<ProductRow> = sql.build_query_as().fetch_all(connection).await?;
    rows.into_iter().map(Product::try_from).collect()
}
