use shop_platform::progress::Progress;
use shop_projection::{RebuildReport, RebuildSettings, Source};

use super::DirectoryProjection;
use crate::{config::Settings, database};

/// Rebuilds the accounts and products projection from offset 0 (see
/// [`shop_projection::rebuild`]), showing progress, and prints what it did.
pub async fn rebuild(settings: &Settings, rebuild: &RebuildSettings) -> anyhow::Result<RebuildReport> {
    let pool = database::connect(settings).await?;
    let live = DirectoryProjection::live();
    let source = Source::from_settings(&settings.kafka);

    let mut progress = Progress::start(format!("Rebuilding {}", DirectoryProjection::NAME));
    let report =
        shop_projection::rebuild(&live, &pool, &source, rebuild, |p| progress.update(p.consumed, p.target))
            .await?;
    progress.finish();

    let (accounts, products): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM account_projection), (SELECT count(*) FROM product_projection)",
    )
    .fetch_one(&pool)
    .await?;
    println!("Rebuilt {} {report}.", DirectoryProjection::NAME);
    println!(
        "The projection now holds {accounts} accounts and {products} products; consumers continue from here."
    );
    Ok(report)
}
