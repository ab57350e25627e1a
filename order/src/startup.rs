//! Building and running the service: the same [`Application`] serves in production and in the tests.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shop_platform::grpc::lazy_channel;
use shop_projection::{self, ProjectionRunner};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Settings, ValidationMode},
    database,
    directory::GrpcDirectory,
    grpc::server::OrderGrpc,
    projection::{DirectoryProjection, ProjectionDirectory},
    service::{OrderService, Placement},
    validation::Validator,
};

/// The order service, connected and migrated, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    pool: PgPool,
    settings: Settings,
}

impl Application {
    /// Connects to the database (retrying while it is unreachable, creating it if missing), applies the
    /// migrations, and binds the gRPC listener. Neither the services nor Kafka need be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = database::connect(settings).await?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        Ok(Self { listener, pool, settings: settings.clone() })
    }

    /// Where the gRPC server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Serves until `shutdown` resolves, then drains in-flight calls and, in projection mode, stops the consumer
    /// and the validator.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let descriptors = shop_proto::FILE_DESCRIPTOR_SET;
        match self.settings.validation {
            ValidationMode::Grpc => {
                let directory = GrpcDirectory::new(
                    lazy_channel(&self.settings.dependency(&self.settings.account_service_url))?,
                    lazy_channel(&self.settings.dependency(&self.settings.catalog_service_url))?,
                );
                let service = OrderService::new(self.pool.clone(), directory, Placement::Synchronous);
                shop_platform::grpc::serve(self.listener, OrderGrpc::server(service), descriptors, shutdown)
                    .await?;
            }
            ValidationMode::Projection => {
                let stop = CancellationToken::new();
                let wake = Arc::new(Notify::new());
                let runner = ProjectionRunner::new(
                    Arc::new(DirectoryProjection::live()),
                    self.pool.clone(),
                    shop_projection::Source::from_settings(&self.settings.kafka),
                )
                .notify_on_applied(wake.clone());
                let validator = Validator::new(
                    self.pool.clone(),
                    ProjectionDirectory::new(self.pool.clone()),
                    Duration::from_millis(self.settings.projection_wait_ms),
                    Duration::from_millis(self.settings.validation_interval_ms),
                    wake.clone(),
                );
                let consuming = tokio::spawn(runner.run(stop.clone()));
                let validating = tokio::spawn(validator.run(stop.clone()));

                let directory = ProjectionDirectory::new(self.pool.clone());
                let service = OrderService::new(self.pool.clone(), directory, Placement::Deferred(wake));
                let served = shop_platform::grpc::serve(
                    self.listener,
                    OrderGrpc::server(service),
                    descriptors,
                    shutdown,
                )
                .await;
                stop.cancel();
                validating.await.context("The validator panicked")?;
                consuming.await.context("The projection consumer panicked")??;
                served?;
            }
        }
        self.pool.close().await;
        tracing::info!("The order service stopped.");
        Ok(())
    }
}
