use clap::Parser;
use shop_bench::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shop_bench::run(Cli::parse()).await
}
