//! Forgetting idempotency keys once they are old enough: a background part of the order service.

use std::time::Duration;

use shop_platform::supervisor::Part;
use sqlx::PgPool;

use crate::repository;

/// Most keys deleted in one statement, so the deletion never holds many rows locked at once.
const BATCH: i64 = 1_000;

/// Deletes keys claimed more than `ttl` ago, in batches, every so often (a quarter of `ttl`, between 1 s and
/// 5 min), until `part.stop`.
pub async fn expire(pool: PgPool, ttl: Duration, part: Part) -> anyhow::Result<()> {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    part.health.serving();
    loop {
        let before = chrono::Utc::now() - ttl;
        let mut deleted = 0;
        loop {
            let batch =
                repository::delete_idempotency_keys_before(&mut *pool.acquire().await?, before, BATCH)
                    .await?;
            deleted += batch;
            if batch < BATCH as u64 {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, ttl_seconds = ttl.as_secs(), "Forgot expired idempotency keys.");
        }
        tokio::select! {
            () = part.stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}
