//! An outside consumer of the shop's events, built on the consumer toolkit: per account, the number and total of
//! confirmed orders, kept in its own Postgres database and printed as they change.
//!
//! It is idempotent the way every consumer of these topics should be: it keeps each account and each order at
//! the latest version it has seen and ignores anything not newer, so duplicates, replays and late copies change
//! nothing; the totals are computed from those rows, never accumulated.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/order_totals KAFKA_BROKERS=127.0.0.1:9092 \
//!     cargo run -p shop-projection --example order_totals
//! ```

use std::{sync::Arc, time::Duration};

use rdkafka::ClientConfig;
use shop_events::{
    account::AccountEvent,
    order::{OrderEvent, OrderStatus},
    topics,
};
use shop_projection::{self as consumer, Outcome, Projection, ProjectionError, ProjectionRunner, Record};
use sqlx::{PgPool, PgTransaction, migrate::MigrateDatabase};
use tokio_util::sync::CancellationToken;

/// Accounts and orders at their latest versions.
struct OrderTotals;

impl Projection for OrderTotals {
    fn name(&self) -> &str {
        "example.order-totals"
    }

    fn topics(&self) -> &[&'static str] {
        &[topics::ACCOUNTS, topics::ORDERS]
    }

    async fn apply(
        &self,
        transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> Result<Vec<Outcome>, ProjectionError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let event_type = record.event_type().unwrap_or_default();
            let changed = match record.topic.as_str() {
                topics::ACCOUNTS => match AccountEvent::decode(event_type, record.payload()) {
                    // Created or republished alike: the version decides whether it changes anything.
                    Ok(event) => sqlx::query(
                        "INSERT INTO example_accounts (id, name, version) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version
                         WHERE example_accounts.version < EXCLUDED.version",
                    )
                    .bind(event.account().id)
                    .bind(&event.account().name)
                    .bind(event.account().version)
                    .execute(&mut **transaction)
                    .await?
                    .rows_affected(),
                    Err(error) => {
                        outcomes.push(Outcome::Skipped(error.to_string()));
                        continue;
                    }
                },
                topics::ORDERS => match OrderEvent::decode(event_type, record.payload()) {
                    Ok(event) => {
                        let order = event.order();
                        let status = match order.status {
                            OrderStatus::Pending => "pending",
                            OrderStatus::AwaitingStock => "awaiting_stock",
                            OrderStatus::Confirmed => "confirmed",
                            OrderStatus::Rejected => "rejected",
                            OrderStatus::Cancelled => "cancelled",
                        };
                        sqlx::query(
                            "INSERT INTO example_orders (id, account_id, status, total_cents, version)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,
                                 total_cents = EXCLUDED.total_cents, version = EXCLUDED.version
                             WHERE example_orders.version < EXCLUDED.version",
                        )
                        .bind(order.id)
                        .bind(order.account_id)
                        .bind(status)
                        .bind(order.total_price_cents)
                        .bind(order.version)
                        .execute(&mut **transaction)
                        .await?
                        .rows_affected()
                    }
                    Err(error) => {
                        outcomes.push(Outcome::Skipped(error.to_string()));
                        continue;
                    }
                },
                _ => 0,
            };
            outcomes.push(if changed == 1 { Outcome::Applied } else { Outcome::Ignored });
        }
        Ok(outcomes)
    }
}

/// One line per account: confirmed orders and their total.
async fn totals(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT coalesce(a.name, o.account_id::text), count(*), coalesce(sum(o.total_cents), 0)::bigint
         FROM example_orders o LEFT JOIN example_accounts a ON a.id = o.account_id
         WHERE o.status = 'confirmed'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, orders, cents)| format!("{name:<30} {orders:>6} orders {:>12.2}", cents as f64 / 100.0))
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/shop_example_order_totals".into());
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());

    if !sqlx::Postgres::database_exists(&database_url).await? {
        sqlx::Postgres::create_database(&database_url).await?;
    }
    let pool = PgPool::connect(&database_url).await?;
    consumer::migrate(&pool).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS example_accounts (id uuid PRIMARY KEY, name text NOT NULL, version bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS example_orders (id uuid PRIMARY KEY, account_id uuid NOT NULL, status text NOT NULL,
                                                    total_cents bigint, version bigint NOT NULL);",
    )
    .execute(&pool)
    .await?;

    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &brokers);
    for (key, value) in consumer::CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    let runner = ProjectionRunner::new(Arc::new(OrderTotals), pool.clone(), consumer::Source::new(config));
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let consuming = tokio::spawn({
        let stop = stop.clone();
        async move { runner.run_until_stopped(stop).await }
    });
    println!("Consuming {} and {} from {brokers}; Ctrl-C to stop.", topics::ACCOUNTS, topics::ORDERS);

    let mut shown = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let now = totals(&pool).await?;
        if now != shown {
            println!(
                "--- confirmed orders per account ({} events applied, {} ignored as duplicates or stale, {} skipped)",
                stats.applied(),
                stats.ignored() + stats.redelivered(),
                stats.skipped()
            );
            now.iter().for_each(|line| println!("{line}"));
            shown = now;
        }
    }
    stop.cancel();
    consuming.await??;
    Ok(())
}
