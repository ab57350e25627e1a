//! The order service's projection of accounts and products, fed from `shop.accounts.v1` and `shop.products.v1`
//! by the consumer toolkit, and the [`ProjectionDirectory`] that validation reads it through.

mod directory;
mod rebuild;

use shop_events::{DecodeError, account::AccountEvent, catalog::ProductEvent, topics};
use shop_projection::{Outcome, Projection, ProjectionError, Rebuildable, Record};
use sqlx::{PgPool, PgTransaction};

pub use directory::ProjectionDirectory;
pub use rebuild::rebuild;

/// The accounts and products an order may name.
#[derive(Debug, Clone)]
pub struct DirectoryProjection {
    name: String,
    accounts: String,
    products: String,
}

impl DirectoryProjection {
    /// The projection's name: its consumer group and its key in `projection_offsets`.
    pub const NAME: &'static str = "order.directory";
    /// The topics it reads.
    pub const TOPICS: &'static [&'static str] = &[topics::ACCOUNTS, topics::PRODUCTS];

    /// The live projection, in `account_projection` and `product_projection`.
    pub fn live() -> Self {
        Self {
            name: Self::NAME.to_owned(),
            accounts: "account_projection".into(),
            products: "product_projection".into(),
        }
    }

    async fn apply_account(
        &self,
        transaction: &mut PgTransaction<'_>,
        event: AccountEvent,
    ) -> Result<Outcome, sqlx::Error> {
        // Republished accounts too: the version guard below ignores one the projection holds already.
        let account = event.account();
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name, version, updated_at, owner) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version,
                                            updated_at = EXCLUDED.updated_at, owner = EXCLUDED.owner
             WHERE {table}.version < EXCLUDED.version",
            table = self.accounts
        )))
        .bind(account.id)
        .bind(&account.name)
        .bind(account.version)
        .bind(account.created_at)
        .bind(&account.owner)
        .execute(&mut **transaction)
        .await?
        .rows_affected();
        Ok(if changed == 1 { Outcome::Applied } else { Outcome::Ignored })
    }

    async fn apply_product(
        &self,
        transaction: &mut PgTransaction<'_>,
        event: ProductEvent,
    ) -> Result<Outcome, sqlx::Error> {
        let product = event.product();
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name, description, price_cents, version, updated_at, tracks_stock)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
                                            price_cents = EXCLUDED.price_cents, version = EXCLUDED.version,
                                            updated_at = EXCLUDED.updated_at, tracks_stock = EXCLUDED.tracks_stock
             WHERE {table}.version < EXCLUDED.version",
            table = self.products
        )))
        .bind(product.id)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.price_cents)
        .bind(product.version)
        .bind(product.updated_at)
        .bind(product.stock.is_some())
        .execute(&mut **transaction)
        .await?
        .rows_affected();
        Ok(if changed == 1 { Outcome::Applied } else { Outcome::Ignored })
    }
}

/// Why a record is skipped.
fn skipped(record: &Record, error: &DecodeError) -> Outcome {
    Outcome::Skipped(format!(
        "{} on {}: {error}",
        record.event_type().unwrap_or("no ce_type header"),
        record.topic
    ))
}

impl Projection for DirectoryProjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn topics(&self) -> &[&'static str] {
        Self::TOPICS
    }

    async fn apply(
        &self,
        transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> Result<Vec<Outcome>, ProjectionError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let Some(event_type) = record.event_type() else {
                outcomes.push(Outcome::Skipped(format!("no ce_type header on {}", record.topic)));
                continue;
            };
            let outcome = match record.topic.as_str() {
                topics::ACCOUNTS => match AccountEvent::decode(event_type, record.payload()) {
                    Ok(event) => self.apply_account(transaction, event).await?,
                    Err(error) => skipped(record, &error),
                },
                topics::PRODUCTS => match ProductEvent::decode(event_type, record.payload()) {
                    Ok(event) => self.apply_product(transaction, event).await?,
                    Err(error) => skipped(record, &error),
                },
                _ => Outcome::Ignored,
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

impl Rebuildable for DirectoryProjection {
    async fn prepare_shadow(&self, pool: &PgPool) -> anyhow::Result<Self> {
        let shadow = Self {
            name: format!("{}.rebuild", self.name),
            accounts: format!("{}_rebuild", self.accounts),
            products: format!("{}_rebuild", self.products),
        };
        for (live, rebuild) in [(&self.accounts, &shadow.accounts), (&self.products, &shadow.products)] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {rebuild}"))).execute(pool).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {rebuild} (LIKE {live} INCLUDING ALL)")))
                .execute(pool)
                .await?;
        }
        Ok(shadow)
    }

    async fn swap_in(&self, shadow: &Self, transaction: &mut PgTransaction<'_>) -> anyhow::Result<()> {
        for (live, rebuild) in [(&self.accounts, &shadow.accounts), (&self.products, &shadow.products)] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {live}")))
                .execute(&mut **transaction)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {rebuild} RENAME TO {live}")))
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }
}
