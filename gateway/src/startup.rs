//! The HTTP server: GraphQL at `/graphql` (POST, and GET for queries), the GraphiQL playground at `/playground`,
//! liveness at `/health` and readiness (every service answering its gRPC health check) at `/health/ready`.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::{
    config::Settings,
    http::{self, server::ConnectionLimits},
    live::OrderFeed,
    schema,
    services::Services,
};

/// The gateway, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    feed: OrderFeed,
}

impl Application {
    /// Builds the schema and the routes and binds the listener. The services need not be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let services = Services::new(settings)?;
        let feed = OrderFeed::new(settings.kafka.clone(), settings.live.clone());
        let schema = schema::build(services.clone(), feed.clone());
        let router = http::router(settings, schema, services, feed.clone())?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(settings.http_header_read_timeout_ms),
            max_streams_per_connection: settings.http2_max_streams_per_connection,
        };
        Ok(Self { listener, router, limits, feed })
    }

    /// Where the HTTP server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Serves until `shutdown` resolves, then closes every WebSocket connection ("going away": their clients
    /// subscribe again elsewhere, getting the current state first) and lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let feed = self.feed;
        let shutdown = async move {
            shutdown.await;
            feed.stop();
        };
        http::server::serve(self.listener, self.router, self.limits, shutdown).await;
        tracing::info!("The gateway stopped.");
        Ok(())
    }
}
