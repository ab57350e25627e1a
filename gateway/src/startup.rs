//! The HTTP server: GraphQL at `/graphql` (POST, and GET for queries), the GraphiQL playground at `/playground`,
//! liveness at `/health` and readiness (every service answering its gRPC health check) at `/health/ready`.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::{
    config::Settings,
    http::{self, server::ConnectionLimits},
    schema,
    services::Services,
};

/// The gateway, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
}

impl Application {
    /// Builds the schema and the routes and binds the listener. The services need not be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let services = Services::new(settings)?;
        let router = http::router(settings, schema::build(services.clone()), services)?;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(settings.http_header_read_timeout_ms),
            max_streams_per_connection: settings.http2_max_streams_per_connection,
        };
        Ok(Self { listener, router, limits })
    }

    /// Where the HTTP server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        http::server::serve(self.listener, self.router, self.limits, shutdown).await;
        tracing::info!("The gateway stopped.");
        Ok(())
    }
}
