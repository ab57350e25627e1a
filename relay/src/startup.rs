//! Building and running the relay: the same [`Application`] runs in production and in the tests.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::registry::Registry;
use shop_events::topics;
use shop_outbox as outbox;
use shop_platform::postgres;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::Settings, kafka, leases::Leases, metrics::Metrics, relay::OutboxRelay, worker::OutboxWorker,
};

/// The relay, connected to every outbox and to Kafka, holding its first shards, with its metrics listener bound.
#[derive(Debug)]
pub struct Application {
    instance_id: Uuid,
    workers: Vec<OutboxWorker>,
    metrics_listener: TcpListener,
    registry: Arc<Registry>,
}

impl Application {
    /// Connects to every outbox database (retrying while unreachable), brings its outbox schema up to date, makes
    /// sure the topics exist, takes a first share of the shards and binds the metrics listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(!settings.database_urls.is_empty(), "No outbox database given (RELAY_DATABASE_URLS)");
        let instance_id = Uuid::now_v7();
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);

        kafka::ensure_topics(
            &settings.kafka,
            &topics::ALL,
            settings.relay.topic_partitions,
            settings.relay.topic_replication_factor,
            settings.relay.create_topics,
            settings.relay.kafka_startup_timeout(),
        )
        .await?;

        let mut workers = Vec::with_capacity(settings.database_urls.len());
        for url in &settings.database_urls {
            let name = url.database_name().unwrap_or("postgres").to_owned();
            let pool = postgres::connect(url, &settings.database).await?;
            outbox::migrate(&pool).await.with_context(|| format!("Failed to migrate the outbox of {url}"))?;
            let leases = Leases::new(pool.clone(), name.clone(), instance_id, settings.relay.lease_ttl());
            leases.refresh().await.with_context(|| format!("Failed to take shard leases on {url}"))?;
            let wake = Arc::new(Notify::new());
            let outbox_metrics = metrics.outbox(&name);
            let relay = OutboxRelay::new(
                name.clone(),
                pool.clone(),
                settings.kafka.clone(),
                settings.relay.clone(),
                leases.subscribe(),
                wake.clone(),
                outbox_metrics.clone(),
            )?;
            workers.push(OutboxWorker {
                outbox: name,
                pool,
                leases,
                relay,
                wake,
                metrics: outbox_metrics,
                retention: settings.relay.retention(),
            });
        }

        let metrics_listener = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.metrics_addr))?;
        Ok(Self { instance_id, workers, metrics_listener, registry: Arc::new(registry) })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener.local_addr().expect("a bound listener has a local address")
    }

    /// This process's id in the lease tables.
    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    /// Relays until `shutdown` resolves; then every outbox finishes or abandons its batch and gives its shards
    /// back.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let registry = self.registry.clone();
        let router = Router::new()
            .route("/metrics", get(move || metrics(registry.clone())))
            .route("/health", get(|| async { "ok" }));
        let server = tokio::spawn(
            axum::serve(self.metrics_listener, router)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );

        let mut workers = tokio::task::JoinSet::new();
        for worker in self.workers {
            workers.spawn(worker.run(stop.clone()));
        }
        tracing::info!(instance_id = %self.instance_id, "Relaying.");

        shutdown.await;
        stop.cancel();
        while let Some(result) = workers.join_next().await {
            result.context("An outbox worker panicked")?;
        }
        server.await.context("The metrics server panicked")?.context("The metrics server failed")?;
        tracing::info!("The relay stopped.");
        Ok(())
    }
}

async fn metrics(registry: Arc<Registry>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                .into_response()
        }
        Err(error) => {
            tracing::error!(error.message = %error, "Failed to encode the metrics.");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
