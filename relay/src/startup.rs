//! Building and running the relay: the same [`Application`] runs in production and in the tests.

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{Json, extract::State, http::StatusCode, routing::get};
use shop_events::topics;
use shop_platform::{
    health::{Health, PartStatus},
    metrics::{self, pools},
    postgres,
    supervisor::Supervisor,
};
use tokio::{net::TcpListener, sync::Notify};
use uuid::Uuid;

use crate::{config::Settings, kafka, leases::Leases, metrics::Metrics, worker::OutboxWorker};

/// The relay, connected to every outbox and to Kafka, holding its first shards, with its metrics listener bound.
#[derive(Debug)]
pub struct Application {
    instance_id: Uuid,
    workers: Vec<OutboxWorker>,
    metrics_listener: TcpListener,
}

impl Application {
    /// Refuses Kafka overrides that would void the relay's guarantees, connects to every outbox database (retrying
    /// while unreachable), brings its outbox schema up to date, makes sure the topics exist, takes a first share of
    /// the shards and binds the metrics listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(!settings.database_urls.is_empty(), "No outbox database given (RELAY_DATABASE_URLS)");
        kafka::check_overrides(&settings.kafka)?;
        let instance_id = Uuid::now_v7();
        let metrics = Metrics::global();

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
            let outbox = url.database_name().unwrap_or("postgres").to_owned();
            let pool =
                postgres::connect_and_migrate(url, &settings.database, &[shop_outbox::migrator()]).await?;
            let leases = Leases::new(pool.clone(), outbox.clone(), instance_id, settings.relay.lease_ttl());
            leases.refresh().await.with_context(|| format!("Failed to take shard leases on {url}"))?;
            workers.push(OutboxWorker {
                metrics: metrics.outbox(&outbox),
                outbox,
                pool,
                kafka: settings.kafka.clone(),
                settings: settings.relay.clone(),
                leases: Arc::new(leases),
                wake: Arc::new(Notify::new()),
            });
        }

        let metrics_listener = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.metrics_addr))?;
        Ok(Self { instance_id, workers, metrics_listener })
    }

    /// Where `/metrics` (every metric of the process, the relay's and any other part's it runs beside) and the
    /// health checks are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener.local_addr().expect("a bound listener has a local address")
    }

    /// This process's id in the lease tables.
    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    /// Relays until `shutdown` resolves; then every outbox finishes or abandons its batch and gives its shards
    /// back. Each outbox's relay is supervised (restarted with backoff should it fail) and reported in
    /// `/health/ready`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let _pools: Vec<pools::PoolWatch> =
            self.workers.iter().map(|worker| pools::watch("relay", &worker.pool)).collect();
        for worker in self.workers {
            let worker = Arc::new(worker);
            supervisor.restarting(worker.outbox.clone(), move |part| {
                let worker = worker.clone();
                async move { worker.run(part).await }
            });
        }
        let router = metrics::router()
            .route("/health", get(|| async { "ok" }))
            .route("/health/ready", get(ready).with_state(health.clone()));
        let stop = supervisor.stop_token();
        let listener = self.metrics_listener;
        let addr = listener.local_addr()?;
        tracing::info!(address = %addr, "Serving metrics at http://{addr}/metrics");
        supervisor.essential("the metrics server", async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(Into::into)
        });
        tracing::info!(instance_id = %self.instance_id, "Relaying.");
        supervisor.run_until(shutdown).await?;
        tracing::info!("The relay stopped.");
        Ok(())
    }
}

/// Readiness: 200 while every outbox's relay can publish, 503 otherwise; the body says which cannot, and why.
async fn ready(State(health): State<Health>) -> (StatusCode, Json<serde_json::Value>) {
    let outboxes: BTreeMap<String, String> = health
        .statuses()
        .into_iter()
        .map(|(outbox, status)| {
            let status = match status {
                PartStatus::Serving => "publishing".to_owned(),
                PartStatus::NotServing(reason) => reason,
            };
            (outbox, status)
        })
        .collect();
    let code = if health.is_serving() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status = if health.is_serving() { "ok" } else { "degraded" };
    (code, Json(serde_json::json!({ "status": status, "outboxes": outboxes })))
}
