use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shop_events::TraceContext;
use shop_platform::ServiceError;
use shop_projection::Completeness;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    directory::{Directory, KnownAccount, Names},
    domain::{CatalogProduct, PricedProduct},
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
