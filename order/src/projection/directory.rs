use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shop_events::TraceContext;
use shop_platform::ServiceError;
use shop_projection::Completeness;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    directory::{Directory, KnownAccount, Names},
    domain::{CatalogProduct, Order, PricedProduct},
};

/// Looks accounts and products up in the order service's own projection: no call to another service. How far the
/// projection is complete comes from the relay's heartbeats ([`Completeness`]).
#[derive(Debug, Clone)]
pub struct ProjectionDirectory {
    pool: PgPool,
    completeness: Option<Completeness>,
}

impl ProjectionDirectory {
    /// A directory that never knows itself complete: it confirms what it finds and rejects nothing.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, completeness: None }
    }

    /// A directory whose completeness `completeness` follows.
    pub fn with_completeness(pool: PgPool, completeness: Completeness) -> Self {
        Self { pool, completeness: Some(completeness) }
    }

    /// The accounts among `ids` that the projection holds, by id.
    async fn accounts(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, KnownAccount>, ServiceError> {
        let rows: Vec<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT id, owner FROM account_projection WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id, owner)| (id, KnownAccount { owner })).collect())
    }

    /// The products among `ids` that the projection holds, by id.
    async fn products_among(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, CatalogProduct>, ServiceError> {
        let rows: Vec<(Uuid, String, String, i64, bool)> = sqlx::query_as(
            "SELECT id, name, description, price_cents, tracks_stock FROM product_projection WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, description, unit_price_cents, tracks_stock)| {
                (
                    id,
                    CatalogProduct {
                        priced: PricedProduct { name, description, unit_price_cents },
                        tracks_stock,
                    },
                )
            })
            .collect())
    }
}

impl Directory for ProjectionDirectory {
    async fn known_through(&self) -> Result<Option<DateTime<Utc>>, ServiceError> {
        match &self.completeness {
            Some(completeness) => Ok(completeness.complete_through(&self.pool).await?),
            None => Ok(None),
        }
    }

    async fn account(&self, id: Uuid, _trace: &TraceContext) -> Result<Option<KnownAccount>, ServiceError> {
        let owner: Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM account_projection WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(owner.map(|owner| KnownAccount { owner }))
    }

    async fn products(
        &self,
        ids: &[Uuid],
        _trace: &TraceContext,
    ) -> Result<HashMap<Uuid, CatalogProduct>, ServiceError> {
        self.products_among(ids).await
    }

    /// One query for the account and the products: one round trip per look.
    async fn names(
        &self,
        account_id: Uuid,
        product_ids: &[Uuid],
        _trace: &TraceContext,
    ) -> Result<Names, ServiceError> {
        // Always at least one row (the account's, found or not), with the products found, if any, joined to it.
        let rows: Vec<NamesRow> = sqlx::query_as(
            "SELECT account.id IS NOT NULL AS account_known, account.owner AS account_owner, product.id,
                    product.name, product.description, product.price_cents, product.tracks_stock
             FROM (VALUES (1)) AS one
             LEFT JOIN account_projection AS account ON account.id = $1
             LEFT JOIN product_projection AS product ON product.id = ANY($2)",
        )
        .bind(account_id)
        .bind(product_ids)
        .fetch_all(&self.pool)
        .await?;
        let account = rows
            .first()
            .filter(|row| row.account_known)
            .map(|row| KnownAccount { owner: row.account_owner.clone() });
        let products = rows
            .into_iter()
            .filter_map(|row| {
                let priced = PricedProduct {
                    name: row.name?,
                    description: row.description?,
                    unit_price_cents: row.price_cents?,
                };
                Some((row.id?, CatalogProduct { priced, tracks_stock: row.tracks_stock? }))
            })
            .collect();
        Ok(Names { account, products })
    }

    /// Two queries for the whole batch, side by side: its accounts, and its products.
    async fn names_of_each(&self, orders: &[(&Order, &TraceContext)]) -> Result<Vec<Names>, ServiceError> {
        let account_ids: Vec<Uuid> = orders.iter().map(|(order, _)| order.account_id).collect();
        let product_ids: Vec<Uuid> = orders.iter().flat_map(|(order, _)| order.product_ids()).collect();
        let (accounts, products) =
            tokio::try_join!(self.accounts(&account_ids), self.products_among(&product_ids))?;
        Ok(orders.iter().map(|(order, _)| names_of(order, &accounts, &products)).collect())
    }
}

/// What `order` names, out of the `accounts` and `products` found for its batch: as [`Directory::names`] answers
/// for the order alone.
fn names_of(
    order: &Order,
    accounts: &HashMap<Uuid, KnownAccount>,
    products: &HashMap<Uuid, CatalogProduct>,
) -> Names {
    let products = order
        .lines
        .iter()
        .filter_map(|line| products.get_key_value(&line.product_id))
        .map(|(id, product)| (*id, product.clone()))
        .collect();
    Names { account: accounts.get(&order.account_id).cloned(), products }
}

/// The account's presence and owner, and one product found (or none).
#[derive(sqlx::FromRow)]
struct NamesRow {
    account_known: bool,
    account_owner: Option<String>,
    id: Option<Uuid>,
    name: Option<String>,
    description: Option<String>,
    price_cents: Option<i64>,
    tracks_stock: Option<bool>,
}
