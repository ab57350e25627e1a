use clap::Parser;
use shop_gateway::{config::Settings, startup::Application};
use shop_platform::{shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let telemetry = telemetry::init(&settings.telemetry, "gateway");
    tracing::info!(?settings, "Starting the GraphQL gateway.");

    let result = async {
        let application = Application::build(&settings).await?;
        tracing::info!(address = %application.local_addr(), "Serving GraphQL at /graphql and the playground at /playground.");
        application.run_until_stopped(shutdown::signal()).await
    }
    .await;
    telemetry.shutdown().await;
    result
}
