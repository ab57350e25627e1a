use clap::Parser;
use shop_bench::Cli;

#[global_allocator]
static ALLOCATOR: shop_platform::Allocator = shop_platform::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shop_bench::run(Cli::parse()).await
}
