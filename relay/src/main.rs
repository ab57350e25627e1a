use clap::Parser;
use shop_platform::{shutdown, telemetry};
use shop_relay::{config::Settings, startup::Application};

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = telemetry::init(&settings.telemetry, "relay");
    tracing::info!(?settings, "Starting the outbox relay.");

    let result = async {
        let application = Application::build(&settings).await?;
        application.run_until_stopped(shutdown::signal()).await
    }
    .await;
    telemetry.shutdown().await;
    result
}
