//! The order service's own database: connecting at start (retrying while Postgres is unreachable, creating the
//! database if missing) and bringing its schema up to date.

use shop_platform::postgres;
use sqlx::PgPool;

use crate::config::Settings;

/// Connects to the order database and applies the migrations: the outbox, the consumer offsets, then the orders and
/// the projection of accounts and products.
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    let migrators = [shop_outbox::migrator(), shop_projection::migrator(), sqlx::migrate!()];
    postgres::connect_and_migrate(&settings.database_url, &settings.database, &migrators).await
}
