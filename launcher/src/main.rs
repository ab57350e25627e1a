use clap::Parser;
use shop::{Cli, Command, Shop, tail};
use shop_platform::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { settings, command } = Cli::parse();
    telemetry::init(&settings.telemetry);

    match command.unwrap_or(Command::Run) {
        Command::Run => {
            tracing::info!(?settings, "Starting the shop.");
            println!("Starting the shop against Postgres at {} …", settings.postgres_url);
            let shop = Shop::start(&settings).await?;
            println!();
            let gateway = shop.gateway_addr;
            println!("The shop is running. GraphQL playground: http://{gateway}/playground");
            println!("REST API reference: http://{gateway}/api/v1/reference");
            println!("Press Ctrl-C to stop.");
            shop.run_until_stopped(shutdown::signal()).await
        }
        Command::Tail(args) => {
            tail::tail(&args, &mut std::io::stdout().lock(), shutdown::signal()).await.map(drop)
        }
    }
}
