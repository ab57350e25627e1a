use clap::Parser;
use shop::{Settings, Shop};
use shop_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(&settings.telemetry);
    tracing::info!(?settings, "Starting the shop.");

    println!(
        "Starting the shop against Postgres at {} …",
        settings.postgres_url
    );
    let shop = Shop::start(&settings).await?;
    println!();
    println!(
        "The shop is running. GraphQL playground: http://{}/playground",
        shop.gateway_addr
    );
    println!("Press Ctrl-C to stop.");
    shop.run_until_stopped(shutdown::signal()).await
}
