//! The one-command local run: account, catalog, order and the gateway in one process, each exactly as its own
//! binary would run it (same `Application`, same settings types), against one Postgres server with a database
//! per service (created if missing).
//!
//! Real deployments run each service as its own binary (`account`, `catalog`, `order`, `gateway`); this crate
//! only wires them together for a laptop, a demo or a smoke test.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use shop_platform::{
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Everything the local run can be told. `shop --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "shop", version, about = "Runs the whole shop on this machine.")]
pub struct Settings {
    /// The Postgres server; each service gets its own database on it (`shop_account`, `shop_catalog`,
    /// `shop_order`), created if missing.
    #[arg(
        long,
        env = "POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432",
        hide_env_values = true
    )]
    pub postgres_url: DatabaseUrl,
    /// Where the GraphQL gateway listens.
    #[arg(long, env = "HTTP_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub http_listen_addr: SocketAddr,
    /// Where the account service listens (gRPC).
    #[arg(long, env = "ACCOUNT_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub account_listen_addr: SocketAddr,
    /// Where the catalog service listens (gRPC).
    #[arg(long, env = "CATALOG_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub catalog_listen_addr: SocketAddr,
    /// Where the order service listens (gRPC).
    #[arg(long, env = "ORDER_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub order_listen_addr: SocketAddr,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// The running system: every part started and listening.
#[derive(Debug)]
pub struct Shop {
    parts: JoinSet<(&'static str, anyhow::Result<()>)>,
    stop: CancellationToken,
    /// Where the gateway listens.
    pub gateway_addr: SocketAddr,
}

impl Shop {
    /// Starts every part, printing one line per part as it comes up. Fails, stopping what already started, if
    /// a part cannot start.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let mut shop = Self {
            parts: JoinSet::new(),
            stop: CancellationToken::new(),
            gateway_addr: settings.http_listen_addr,
        };
        if let Err(error) = shop.start_parts(settings).await {
            // The start-up error is the one worth reporting; failures while stopping are logged.
            let _ = shop.stop().await;
            return Err(error);
        }
        Ok(shop)
    }

    async fn start_parts(&mut self, settings: &Settings) -> anyhow::Result<()> {
        let database = |name: &str| settings.postgres_url.with_database(name);
        let url = |addr: SocketAddr| format!("http://{addr}");

        let account_settings = shop_account::config::Settings {
            listen_addr: settings.account_listen_addr,
            database_url: database("shop_account"),
            database: settings.database.clone(),
            telemetry: settings.telemetry.clone(),
        };
        let catalog_settings = shop_catalog::config::Settings {
            listen_addr: settings.catalog_listen_addr,
            database_url: database("shop_catalog"),
            database: settings.database.clone(),
            telemetry: settings.telemetry.clone(),
            ..Default::default()
        };
        let (account, catalog) = tokio::try_join!(
            async {
                shop_account::startup::Application::build(&account_settings)
                    .await
                    .context("account")
            },
            async {
                shop_catalog::startup::Application::build(&catalog_settings)
                    .await
                    .context("catalog")
            },
        )?;
        let (account_addr, catalog_addr) = (account.local_addr(), catalog.local_addr());
        self.spawn(
            "account",
            format!("gRPC {}   database shop_account", url(account_addr)),
            account.run_until_stopped(self.stop.clone().cancelled_owned()),
        );
        self.spawn(
            "catalog",
            format!("gRPC {}   database shop_catalog", url(catalog_addr)),
            catalog.run_until_stopped(self.stop.clone().cancelled_owned()),
        );

        let order_settings = shop_order::config::Settings {
            listen_addr: settings.order_listen_addr,
            database_url: database("shop_order"),
            database: settings.database.clone(),
            validation: shop_order::config::ValidationMode::Grpc,
            account_service_url: url(account_addr),
            catalog_service_url: url(catalog_addr),
            telemetry: settings.telemetry.clone(),
            ..Default::default()
        };
        let order = shop_order::startup::Application::build(&order_settings)
            .await
            .context("order")?;
        let order_addr = order.local_addr();
        self.spawn(
            "order",
            format!("gRPC {}   database shop_order, validation: grpc", url(order_addr)),
            order.run_until_stopped(self.stop.clone().cancelled_owned()),
        );

        let gateway_settings = shop_gateway::config::Settings {
            listen_addr: settings.http_listen_addr,
            account_service_url: url(account_addr),
            catalog_service_url: url(catalog_addr),
            order_service_url: url(order_addr),
            telemetry: settings.telemetry.clone(),
            ..Default::default()
        };
        let gateway = shop_gateway::startup::Application::build(&gateway_settings)
            .await
            .context("gateway")?;
        self.gateway_addr = gateway.local_addr();
        self.spawn(
            "gateway",
            format!("GraphQL {}/graphql", url(self.gateway_addr)),
            gateway.run_until_stopped(self.stop.clone().cancelled_owned()),
        );
        Ok(())
    }

    /// Runs `part` (an `Application::run_until_stopped` given this shop's stop signal) and says it is up.
    fn spawn(
        &mut self,
        name: &'static str,
        status: String,
        part: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.parts.spawn(async move { (name, part.await) });
        println!("  {name:<8} up    {status}");
    }

    /// Runs until `shutdown` resolves or a part stops on its own (which stops the others), then waits for every
    /// part to finish. Fails if any part failed.
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let early_exit = tokio::select! {
            () = shutdown => None,
            Some(joined) = self.parts.join_next() => Some(joined),
        };
        let result = match early_exit {
            None => Ok(()),
            Some(joined) => {
                let (name, outcome) = joined.context("A part panicked")?;
                tracing::error!(part = name, "A part stopped on its own; stopping the others.");
                Err(match outcome {
                    Ok(()) => anyhow::anyhow!("{name} stopped unexpectedly"),
                    Err(error) => error.context(format!("{name} failed")),
                })
            }
        };
        let stopped = self.stop().await;
        result.and(stopped)
    }

    /// Tells every part to stop and waits for them, reporting the first failure.
    async fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut result = Ok(());
        while let Some(joined) = self.parts.join_next().await {
            let (name, outcome) = joined.context("A part panicked")?;
            match outcome {
                Ok(()) => println!("  {name:<8} stopped"),
                Err(error) => {
                    tracing::error!(part = name, error.cause_chain = ?error, "A part failed while stopping.");
                    result = result.and(Err(error.context(format!("{name} failed"))));
                }
            }
        }
        result
    }
}
