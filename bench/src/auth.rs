//! The issuer of the order-placement benchmark's run with authentication: a development issuer in this process whose
//! keys are served over HTTP, the way an OpenID Connect provider serves its JWKS, so the child gateway fetches and
//! caches them as a deployed one does; and customer tokens, one per subject.

use std::time::Duration;

use anyhow::Context;
use axum::{Json, Router, routing::get};
use shop_gateway::auth::dev::{DEV_AUDIENCE, DevIssuer};
use shop_testkit::RunningServer;

/// A development issuer with its keys at `/jwks.json`.
#[derive(Debug)]
pub struct BenchIssuer {
    issuer: DevIssuer,
    jwks_url: String,
    _server: RunningServer,
}

impl BenchIssuer {
    /// Serves a new issuer's keys on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let issuer = DevIssuer::generate(&base)?;
        let jwks = issuer.jwks().clone();
        let router = Router::new().route("/jwks.json", get(move || async move { Json(jwks.clone()) }));
        let server = RunningServer::spawn(|shutdown| async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .context("The JWKS server failed")
        });
        Ok(Self { issuer, jwks_url: format!("{base}/jwks.json"), _server: server })
    }

    /// The environment of a gateway that trusts this issuer.
    pub fn gateway_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AUTH_ISSUER", self.issuer.issuer().to_owned()),
            ("AUTH_JWKS_URL", self.jwks_url.clone()),
            ("AUTH_AUDIENCE", DEV_AUDIENCE.to_owned()),
        ]
    }

    /// A customer token for `subject`, valid for longer than any run.
    pub fn customer_token(&self, subject: &str) -> anyhow::Result<String> {
        self.issuer.mint(subject, false, Duration::from_secs(24 * 3_600))
    }
}
