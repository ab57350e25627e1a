use clap::Parser;
use shop_gateway::{config::Settings, startup::Application};
use shop_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(&settings.telemetry);
    tracing::info!(?settings, "Starting the GraphQL gateway.");

    let application = Application::build(&settings).await?;
    tracing::info!(address = %application.local_addr(), "Serving GraphQL at /graphql and the playground at /playground.");
    application.run_until_stopped(shutdown::signal()).await
}
