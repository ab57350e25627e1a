//! Building and running the service: the same [`Application`] serves in production and in the tests.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use shop_platform::{
    health::Health,
    metrics::{self, pools},
    supervisor::Supervisor,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::{config::Settings, database, grpc::server::AccountGrpc, service::AccountService};

/// The account service, connected and migrated, with its listeners bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    pool: PgPool,
}

impl Application {
    /// Connects to the database (retrying while it is unreachable, creating it if missing), applies the
    /// migrations, and binds the gRPC and metrics listeners.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = database::connect(settings).await?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let metrics_listener = metrics::bind(settings.metrics_addr).await?;
        Ok(Self { listener, metrics_listener, pool })
    }

    /// Where the gRPC server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Where `/metrics` is served, if this process serves it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|listener| listener.local_addr().expect("a bound listener has a local address"))
    }

    /// Serves gRPC and `/metrics` until `shutdown` resolves, then drains in-flight calls and closes the pool.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let _pool = pools::watch("account", &self.pool);
        let server = AccountGrpc::server(AccountService::new(self.pool.clone()));
        let stop = supervisor.stop_token();
        supervisor.essential("the gRPC server", async move {
            let descriptors = shop_proto::FILE_DESCRIPTOR_SET;
            shop_platform::grpc::serve(self.listener, server, descriptors, health, stop.cancelled_owned())
                .await
        });
        metrics::supervise(&mut supervisor, self.metrics_listener);
        let stopped = supervisor.run_until(shutdown).await;
        self.pool.close().await;
        tracing::info!("The account service stopped.");
        stopped
    }
}
