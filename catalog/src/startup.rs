//! Building and running the service: the same [`Application`] serves in production and in the tests.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use shop_projection::{self, ProjectionRunner};

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    database,
    grpc::server::CatalogGrpc,
    search::{ProductIndex, SearchBackend, SearchIndexProjection},
    service::CatalogService,
};

/// The catalog service, connected and migrated, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    pool: PgPool,
    settings: Settings,
    index: Option<ProductIndex>,
}

impl Application {
    /// Connects to the database (retrying while it is unreachable, creating it if missing), applies the
    /// migrations, makes sure the search index exists (elasticsearch backend) and binds the gRPC listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = database::connect(settings).await?;
        let index = match settings.search.search_backend {
            SearchBackend::Postgres => None,
            SearchBackend::Elasticsearch => {
                let index = ProductIndex::new(
                    &settings.search.elasticsearch_url,
                    &settings.search.elasticsearch_index,
                )?;
                index.ensure_exists().await?;
                Some(index)
            }
        };
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        Ok(Self { listener, pool, settings: settings.clone(), index })
    }

    /// Where the gRPC server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Serves until `shutdown` resolves, then drains in-flight calls (and stops feeding the search index).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let feeding = self.index.clone().map(|index| {
            let runner = ProjectionRunner::new(
                Arc::new(SearchIndexProjection::live(index)),
                self.pool.clone(),
                shop_projection::Source::from_settings(&self.settings.kafka),
            );
            tokio::spawn(runner.run(stop.clone()))
        });
        let server = CatalogGrpc::server(CatalogService::new(self.pool.clone(), self.index));
        let served =
            shop_platform::grpc::serve(self.listener, server, shop_proto::FILE_DESCRIPTOR_SET, shutdown)
                .await;
        stop.cancel();
        if let Some(feeding) = feeding {
            feeding.await.context("The search index consumer panicked")??;
        }
        served?;
        self.pool.close().await;
        tracing::info!("The catalog service stopped.");
        Ok(())
    }
}
