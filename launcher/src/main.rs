use clap::Parser;
use shop::{Cli, Command, Shop, dev_auth, load, tail};
use shop_platform::{shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { settings, command } = Cli::parse();
    let telemetry = telemetry::init(&settings.telemetry, "shop");

    let result = async {
        match command.unwrap_or(Command::Run) {
            Command::Run => {
                tracing::info!(?settings, "Starting the shop.");
                println!("Starting the shop against Postgres at {} …", settings.postgres_url);
                let shop = Shop::start(&settings).await?;
                println!();
                let gateway = shop.gateway_addr;
                println!("The shop is running. GraphQL playground: http://{gateway}/playground");
                println!("REST API reference: http://{gateway}/api/v1/reference");
                match shop.dev_auth() {
                    Some(dev) => println!("{}", dev.banner()?),
                    None => println!("{}", dev_auth::DISABLED_BANNER),
                }
                println!("Press Ctrl-C to stop.");
                shop.run_until_stopped(shutdown::signal()).await
            }
            Command::Tail(args) => {
                tail::tail(&args, &mut std::io::stdout().lock(), shutdown::signal()).await.map(drop)
            }
            // The token alone on stdout, so that `TOKEN=$(shop token --subject alice)` works.
            Command::Token(args) => {
                println!("{}", dev_auth::token(&args, settings.http_listen_addr).await?);
                Ok(())
            }
            // The report on stdout, progress on stderr: `shop load > report.txt` keeps the report alone.
            Command::Load(command) => {
                load::load(&command, settings.http_listen_addr, &mut std::io::stdout().lock()).await.map(drop)
            }
        }
    }
    .await;
    telemetry.shutdown().await;
    result
}
