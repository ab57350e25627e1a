//! `account republish`: appends every account's current state to the outbox again, for consumers of
//! `shop.accounts.v1` that lost its first records (see [`shop_outbox::republish`]).

use shop_events::{Envelope, account::AccountRepublished, republish::RepublishCompleted, topics};
use shop_outbox::republish::{self as runner, Entities};
use shop_platform::{kafka, progress::Stages};
use sqlx::{PgPool, PgTransaction};
use uuid::Uuid;

use crate::{
    config::{RepublishArgs, Settings},
    database, repository,
};

/// The accounts, as the republish walks them.
#[derive(Debug, Clone, Copy)]
pub struct Accounts;

impl Entities for Accounts {
    fn topic(&self) -> &'static str {
        topics::ACCOUNTS
    }

    async fn count(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(pool).await?;
        Ok(count as u64)
    }

    async fn next_batch(
        &self,
        transaction: &mut PgTransaction<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Envelope>, sqlx::Error> {
        let accounts = repository::share_accounts_after(transaction, after, limit).await?;
        Ok(accounts
            .iter()
            .map(|account| Envelope::new(&AccountRepublished { account: account.to_event_state() }, None))
            .collect())
    }
}

/// Republishes every account, showing progress, and prints what it did.
pub async fn republish(settings: &Settings, args: &RepublishArgs) -> anyhow::Result<RepublishCompleted> {
    let pool = database::connect(settings).await?;
    // Before anything is written: every event of the run lands at or after these offsets.
    let starts = runner::start_offsets(kafka::partition_ends(&args.kafka, topics::ACCOUNTS).await?);
    let mut shown = Stages::default();
    let completed = runner::republish(&pool, &Accounts, starts, &args.republish, |progress| {
        let (stage, done, total) = progress.stage();
        shown.update(stage, done, total)
    })
    .await;
    shown.finish();
    let completed = completed?;
    println!("{}", runner::summary(&completed, &args.kafka.topic(topics::ACCOUNTS)));
    Ok(completed)
}
