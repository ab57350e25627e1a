use clap::Parser;
use shop_account::{
    config::{Cli, Command},
    republish,
    startup::Application,
};
use shop_platform::{shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { settings, command } = Cli::parse();
    let telemetry = telemetry::init(&settings.telemetry, "account");

    let result = async {
    match command.unwrap_or(Command::Serve) {
            Command::Serve => {
                tracing::info!(?settings, "Starting the account service.");
                let application = Application::build(&settings).await?;
                tracing::info!(address = %application.local_addr(), "Serving shop.account.v1.AccountService over gRPC.");
                application.run_until_stopped(shutdown::signal()).await
            }
            Command::Republish(args) => republish::republish(&settings, &args).await.map(drop),
        }
    }
    .await;
    telemetry.shutdown().await;
    result
}
