use clap::Parser;
use shop_order::{
    config::{Cli, Command},
    projection, republish,
    startup::Application,
};
use shop_platform::{shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { settings, command } = Cli::parse();
    let telemetry = telemetry::init(&settings.telemetry, "order");

    let result = async {
    match command.unwrap_or(Command::Serve) {
            Command::Serve => {
                tracing::info!(?settings, "Starting the order service.");
                let application = Application::build(&settings).await?;
                tracing::info!(address = %application.local_addr(), "Serving shop.order.v1.OrderService over gRPC.");
                application.run_until_stopped(shutdown::signal()).await
            }
            Command::RebuildProjections(rebuild) => projection::rebuild(&settings, &rebuild).await.map(drop),
            Command::Republish(republish) => republish::republish(&settings, &republish).await.map(drop),
        }
    }
    .await;
    telemetry.shutdown().await;
    result
}
