//! Forgetting idempotency keys once they are old enough: a background part of the order service.

use std::time::Duration;

use shop_platform::supervisor::Part;
use sqlx::PgPool;

use crate::repository;

/// Most keys deleted in one statement, so the deletion never holds many rows locked at once.
const BATCH: i64 = 1_000;

/// Deletes keys claimed more than `ttl` ago, in batches, `every` so often, until `part.stop`.
pub async fn expire(pool: PgPool, ttl: Duration, every: Duration, part: Part) -> anyhow::Result<()> {
    part.health.serving();
    loop {
        let mut deleted = 0;
        loop {
            let batch =
                repository::delete_expired_idempotency_keys(&mut *pool.acquire().await?, ttl, BATCH).await?;
            deleted += batch;
            // A backlog is worked off in many statements; a stop waits for one at most.
            if batch < BATCH as u64 || part.stop.is_cancelled() {
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
