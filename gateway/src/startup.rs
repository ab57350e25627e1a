//! The HTTP server: GraphQL at `/graphql` (POST, and GET for queries), the GraphiQL playground at `/playground`,
//! liveness at `/health` and readiness (every service answering its gRPC health check) at `/health/ready`; and,
//! on a listener of its own, the process's metrics at `/metrics`.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::Router;
use shop_platform::{health::Health, metrics, supervisor::Supervisor};
use tokio::net::TcpListener;

use crate::{
    config::Settings,
    http::{self, server::ConnectionLimits},
    live::OrderFeed,
    schema,
    services::Services,
};

/// The gateway, with its listeners bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    router: Router,
    limits: ConnectionLimits,
    feed: OrderFeed,
}

impl Application {
    /// Builds the schema and the routes and binds the HTTP and metrics listeners. The services need not be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let services = Services::new(settings)?;
        let feed = OrderFeed::new(settings.kafka.clone(), settings.live.clone());
        let schema = schema::build(services.clone(), feed.clone());
        let router = http::router(settings, schema, services, feed.clone())?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let metrics_listener = metrics::bind(settings.metrics_addr).await?;
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(settings.http_header_read_timeout_ms),
            max_streams_per_connection: settings.http2_max_streams_per_connection,
        };
        Ok(Self { listener, metrics_listener, router, limits, feed })
    }

    /// Where the HTTP server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Where `/metrics` is served, if this process serves it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|listener| listener.local_addr().expect("a bound listener has a local address"))
    }

    /// Serves HTTP and `/metrics` until `shutdown` resolves, then closes every WebSocket connection ("going away":
    /// their clients subscribe again elsewhere, getting the current state first) and lets in-flight requests
    /// finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let health = Health::new();
        // Longer than the HTTP server's own drain, so that it is never aborted while draining.
        let mut supervisor =
            Supervisor::new(&health).with_grace(http::server::DRAIN_TIMEOUT + Duration::from_secs(5));
        let (feed, stop) = (self.feed, supervisor.stop_token());
        let stopped = async move {
            stop.cancelled().await;
            feed.stop();
        };
        let (listener, router, limits) = (self.listener, self.router, self.limits);
        supervisor.essential("the HTTP server", async move {
            http::server::serve(listener, router, limits, stopped).await;
            Ok(())
        });
        metrics::supervise(&mut supervisor, self.metrics_listener);
        let result = supervisor.run_until(shutdown).await;
        tracing::info!("The gateway stopped.");
        result
    }
}
