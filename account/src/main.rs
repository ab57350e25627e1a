use clap::Parser;
use shop_account::{config::Settings, startup::Application};
use shop_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    telemetry::init(&settings.telemetry);
    tracing::info!(?settings, "Starting the account service.");

    let application = Application::build(&settings).await?;
    tracing::info!(address = %application.local_addr(), "Serving shop.account.v1.AccountService over gRPC.");
    application.run_until_stopped(shutdown::signal()).await
}
