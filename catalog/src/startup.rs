//! Building and running the service: the same [`Application`] serves in production and in the tests.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use shop_platform::{
    health::Health,
    metrics::{self, pools},
    supervisor::Supervisor,
};
use shop_projection::{ProjectionRunner, Source};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::{
    config::Settings,
    database,
    grpc::server::CatalogGrpc,
    search::{ProductIndex, SearchBackend, SearchIndexProjection},
    service::CatalogService,
    stock::StockSaga,
};

/// The catalog service, connected and migrated, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    pool: PgPool,
    settings: Settings,
    index: Option<ProductIndex>,
}

impl Application {
    /// Connects to the database (retrying while it is unreachable, creating it if missing), applies the
    /// migrations, makes sure the search index exists (elasticsearch backend) and binds the gRPC and metrics
    /// listeners.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = database::connect(settings).await?;
        let index = match settings.search.search_backend {
            SearchBackend::Postgres => None,
            SearchBackend::Elasticsearch => {
                let index = ProductIndex::new(
                    settings.search.elasticsearch_url.expose(),
                    &settings.search.elasticsearch_index,
                )?;
                index.ensure_exists().await?;
                Some(index)
            }
        };
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let metrics_listener = metrics::bind(settings.metrics_addr).await?;
        Ok(Self { listener, metrics_listener, pool, settings: settings.clone(), index })
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

    /// Serves gRPC and `/metrics` until `shutdown` resolves, then drains in-flight calls and stops the consumers.
    ///
    /// Beside the server run, supervised, the consumer of order events that reserves and releases stock (gRPC health
    /// `catalog.stock-reservations`) and, with the elasticsearch backend, the consumer feeding the index
    /// (`catalog.search-index`): should one fail, it is restarted with backoff and reported NOT_SERVING meanwhile.
    /// A consumer waiting for Kafka is NOT_SERVING under its own name (and so in the server's overall status), while
    /// `shop.catalog.v1.CatalogService` stays SERVING: every rpc answers from Postgres alone.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let _pool = pools::watch("catalog", &self.pool);
        metrics::supervise(&mut supervisor, self.metrics_listener);
        let source = Source::from_settings(&self.settings.kafka);
        let saga = Arc::new(ProjectionRunner::new(Arc::new(StockSaga), self.pool.clone(), source.clone()));
        supervisor.restarting(StockSaga::NAME, move |part| {
            let saga = saga.clone();
            async move { saga.run(part).await }
        });
        if let Some(index) = self.index.clone() {
            let runner = Arc::new(ProjectionRunner::new(
                Arc::new(SearchIndexProjection::live(index)),
                self.pool.clone(),
                source,
            ));
            supervisor.restarting(SearchIndexProjection::NAME, move |part| {
                let runner = runner.clone();
                async move { runner.run(part).await }
            });
        }
        let server = CatalogGrpc::server(CatalogService::new(self.pool.clone(), self.index));
        let (stop, health) = (supervisor.stop_token(), health.clone());
        supervisor.essential("the gRPC server", async move {
            let descriptors = shop_proto::FILE_DESCRIPTOR_SET;
            shop_platform::grpc::serve(self.listener, server, descriptors, health, stop.cancelled()).await
        });
        let stopped = supervisor.run_until(shutdown).await;
        self.pool.close().await;
        tracing::info!("The catalog service stopped.");
        stopped
    }
}
