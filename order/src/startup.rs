//! Building and running the service: the same [`Application`] serves in production and in the tests.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shop_platform::{
    grpc::lazy_channel,
    health::Health,
    metrics::{self, pools},
    supervisor::Supervisor,
};
use shop_projection::{Completeness, ProjectionRunner, Source};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    config::{Settings, ValidationMode},
    database,
    directory::{Directory, GrpcDirectory},
    grpc::server::OrderGrpc,
    projection::{DirectoryProjection, ProjectionDirectory},
    saga::{answers::StockAnswers, catalog::CatalogStock, deadlines::StockDeadlines},
    service::{OrderService, Placement},
    validation::{PricedAnswer, ValidationSettings, Validator},
};

/// The order service, connected and migrated, with its listeners bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    pool: PgPool,
    settings: Settings,
}

impl Application {
    /// Connects to the database (retrying while it is unreachable, creating it if missing), applies the
    /// migrations, and binds the gRPC and metrics listeners. Neither the services nor Kafka need be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = database::connect(settings).await?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let metrics_listener = metrics::bind(settings.metrics_addr).await?;
        crate::metrics::register_all();
        Ok(Self { listener, metrics_listener, pool, settings: settings.clone() })
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

    /// Serves gRPC and `/metrics` until `shutdown` resolves, then drains in-flight calls and stops the background
    /// parts.
    ///
    /// Beside the gRPC server runs the validator of pending orders and, in projection mode, the consumer that feeds
    /// the projection of accounts and products and the consumer of the catalog's answers about stock
    /// (`order.stock-answers`); in both modes, the sweep of stock deadlines (`order.stock-deadlines`). Each is
    /// supervised: should one fail, it is restarted with backoff and reported NOT_SERVING meanwhile, in gRPC health
    /// under its own name (`order.directory`, the consumer; `order.completeness`, the follower of the relay's
    /// heartbeats; `order.validator`) and in the server's overall status.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let _pool = pools::watch("order", &self.pool);
        metrics::supervise(&mut supervisor, self.metrics_listener.take());
        let wake = Arc::new(Notify::new());
        let validation = self.settings.validation_settings();
        match self.settings.validation {
            ValidationMode::Grpc => {
                let catalog = lazy_channel(&self.settings.dependency(&self.settings.catalog_service_url))?;
                let directory = GrpcDirectory::new(
                    lazy_channel(&self.settings.dependency(&self.settings.account_service_url))?,
                    catalog.clone(),
                );
                let catalog = CatalogStock::new(catalog);
                supervise_validator(&mut supervisor, &self.pool, directory.clone(), validation, wake);
                self.supervise_deadlines(&mut supervisor, Some(catalog.clone()));
                let service =
                    OrderService::new(self.pool.clone(), directory, Placement::Synchronous { catalog })
                        .keeping_keys_for(self.settings.idempotency_key_ttl());
                serve(&mut supervisor, &health, self.listener, service);
            }
            ValidationMode::Projection => {
                let directory_changed = Arc::new(Notify::new());
                let directory =
                    self.supervise_projection(&mut supervisor, [wake.clone(), directory_changed.clone()]);
                supervise_validator(&mut supervisor, &self.pool, directory.clone(), validation, wake.clone());
                self.supervise_stock_answers(&mut supervisor);
                self.supervise_deadlines(&mut supervisor, None);
                let priced = PricedAnswer {
                    wait: Duration::from_millis(self.settings.priced_answer_wait_ms),
                    directory_changed,
                    settings: validation,
                };
                let placement = Placement::Deferred { validator: wake, priced: Some(priced) };
                let service = OrderService::new(self.pool.clone(), directory, placement)
                    .keeping_keys_for(self.settings.idempotency_key_ttl());
                serve(&mut supervisor, &health, self.listener, service);
            }
        }
        let (pool, ttl) = (self.pool.clone(), self.settings.idempotency_key_ttl());
        let every = Duration::from_secs(self.settings.idempotency_key_cleanup_interval_seconds.max(1));
        supervisor.restarting("order.idempotency-keys", move |part| {
            crate::idempotency_keys::expire(pool.clone(), ttl, every, part)
        });
        let stopped = supervisor.run_until(shutdown).await;
        self.pool.close().await;
        tracing::info!("The order service stopped.");
        stopped
    }

    /// The consumer of the catalog's answers about stock (projection mode).
    fn supervise_stock_answers(&self, supervisor: &mut Supervisor) {
        let source = Source::from_settings(&self.settings.kafka);
        let runner = Arc::new(ProjectionRunner::new(Arc::new(StockAnswers), self.pool.clone(), source));
        supervisor.restarting(StockAnswers::NAME, move |part| {
            let runner = runner.clone();
            async move { runner.run(part).await }
        });
    }

    /// The sweep of orders past their stock deadline and of releases owed (asked of `catalog` in `grpc` mode).
    fn supervise_deadlines(&self, supervisor: &mut Supervisor, catalog: Option<CatalogStock>) {
        let deadlines = Arc::new(StockDeadlines::new(
            self.pool.clone(),
            Duration::from_millis(self.settings.stock_timeout_ms),
            Duration::from_millis(self.settings.validation_interval_ms),
            catalog,
        ));
        supervisor.restarting("order.stock-deadlines", move |part| {
            let deadlines = deadlines.clone();
            async move { deadlines.run(part).await }
        });
    }

    /// The consumer that feeds the projection of accounts and products, waking each of `on_applied` after every
    /// batch that changed it, and the follower of the relay's heartbeats; returns the directory over both.
    fn supervise_projection(
        &self,
        supervisor: &mut Supervisor,
        on_applied: [Arc<Notify>; 2],
    ) -> ProjectionDirectory {
        let source = Source::from_settings(&self.settings.kafka);
        let runner = on_applied.into_iter().fold(
            ProjectionRunner::new(Arc::new(DirectoryProjection::live()), self.pool.clone(), source.clone()),
            ProjectionRunner::notify_on_applied,
        );
        let runner = Arc::new(runner);
        supervisor.restarting(DirectoryProjection::NAME, move |part| {
            let runner = runner.clone();
            async move { runner.run(part).await }
        });
        let completeness = Completeness::new(source, DirectoryProjection::NAME, DirectoryProjection::TOPICS);
        supervisor.restarting("order.completeness", {
            let completeness = completeness.clone();
            move |part| {
                let completeness = completeness.clone();
                async move { completeness.follow(part).await }
            }
        });
        ProjectionDirectory::with_completeness(self.pool.clone(), completeness)
    }
}

/// The gRPC server, whose end ends the process.
fn serve<D: Directory + Clone>(
    supervisor: &mut Supervisor,
    health: &Health,
    listener: TcpListener,
    service: OrderService<D>,
) {
    let (health, stop) = (health.clone(), supervisor.stop_token());
    supervisor.essential("the gRPC server", async move {
        let server = OrderGrpc::server(service);
        shop_platform::grpc::serve(
            listener,
            server,
            shop_proto::FILE_DESCRIPTOR_SET,
            health,
            stop.cancelled(),
        )
        .await
    });
}

/// The validator of pending orders, restarted should it fail.
fn supervise_validator<D: Directory + Clone>(
    supervisor: &mut Supervisor,
    pool: &PgPool,
    directory: D,
    settings: ValidationSettings,
    wake: Arc<Notify>,
) {
    let validator = Arc::new(Validator::new(pool.clone(), directory, settings, wake));
    supervisor.restarting("order.validator", move |part| {
        let validator = validator.clone();
        async move { validator.run(part).await }
    });
}
