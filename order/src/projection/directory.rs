use std::collections::HashMap;

use shop_events::TraceContext;
use shop_platform::ServiceError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{directory::Directory, domain::PricedProduct};

/// Looks accounts and products up in the order service's own projection: no call to another service.
#[derive(Debug, Clone)]
pub struct ProjectionDirectory {
    pool: PgPool,
}

impl ProjectionDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Directory for ProjectionDirectory {
    async fn account_exists(&self, id: Uuid, _trace: &TraceContext) -> Result<bool, ServiceError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM account_projection WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn products(
        &self,
        ids: &[Uuid],
        _trace: &TraceContext,
    ) -> Result<HashMap<Uuid, PricedProduct>, ServiceError> {
        let rows: Vec<(Uuid, String, String, i64)> = sqlx::query_as(
            "SELECT id, name, description, price_cents FROM product_projection WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, description, unit_price_cents)| {
                (id, PricedProduct { name, description, unit_price_cents })
            })
            .collect())
    }
}
