use clap::Parser;
use shop_order::{config::Settings, startup::Application};
use shop_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(&settings.telemetry);
    tracing::info!(?settings, "Starting the order service.");

    let application = Application::build(&settings).await?;
    tracing::info!(address = %application.local_addr(), "Serving shop.order.v1.OrderService over gRPC.");
    application.run_until_stopped(shutdown::signal()).await
}
