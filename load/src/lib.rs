//! `shop-load`: a load generator that drives any running shop through its public GraphQL API, as its customers
//! would, and reports what they saw. `shop load` is its command line; the benchmark calls [`run`] for its gateway
//! figures.
//!
//! A run seeds the shop first (products added, customers signed up, one order each; nothing measured), then
//! sends a weighted mix of operations — sign-ups, catalog pages followed by cursor, searches, orders of 1 to 5
//! lines, order look-ups by id and by account, and orders followed live over a GraphQL subscription — at a
//! target rate (open loop) or concurrency (closed loop) for a duration, printing progress once a second, and
//! ends with a [`Report`]: per operation, count, errors by code, latency percentiles and rate.
//!
//! - [`config`]: what a run is told ([`LoadConfig`], the command line's [`LoadArgs`], [`Credentials`]).
//! - [`mix`]: the operations and their weights.
//! - [`report`]: the final report, as text and JSON.
//! - Inside: `client` (GraphQL over HTTP, failures as codes), `subscription` (`graphql-transport-ws`),
//!   `world` (the seed, and the customers and products the run acts on), `operations` (each operation's
//!   request and checks), `driver` (open and closed loops, progress), `stats` (histograms).

mod client;
pub mod config;
mod driver;
pub mod mix;
mod operations;
pub mod report;
mod stats;
mod subscription;
mod world;

use std::sync::Arc;

pub use config::{Credentials, LoadArgs, LoadConfig, SeedSettings, Target, TokenIssuer};
pub use mix::{Mix, Operation};
pub use report::{OperationReport, Report};

use crate::{client::Gateway, driver::Load, report::RunFacts, stats::Recorder, world::World};

/// Why a run could not take place. Failures of single operations are not errors: the report counts them.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration cannot be run as it is; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The seed failed (the shop is not there, refuses these credentials, has nothing to order): the message
    /// says which request failed and with which code.
    #[error("The seed failed: {0}")]
    Seed(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Seeds the shop at `config.endpoint`, sends the mix at the target for the duration, and reports.
pub async fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    let mut mix = config.mix.clone();
    let mut notes = Vec::new();
    if matches!(config.credentials, Credentials::Given { .. }) && mix.weight(Operation::SignUp) > 0 {
        mix.set(Operation::SignUp, 0);
        notes.push(
            "sign-up left out: every request carries the given token, and one subject owns one account"
                .to_owned(),
        );
    }
    let sampler =
        mix.sampler().ok_or_else(|| LoadError::Invalid("no operation has a weight above 0".into()))?;
    let gateway = Gateway::new(&config.endpoint, config.request_timeout).map_err(anyhow::Error::from)?;
    if config.progress {
        eprintln!(
            "Seeding {} ({} products, {} customers) …",
            config.endpoint, config.seed.products, config.seed.accounts
        );
    }
    let world = Arc::new(World::seed(config, &gateway).await?);
    if config.progress {
        eprintln!(
            "Seeded: {} products known. Sending {mix} at {} for {:.1} s.",
            world.products.len(),
            config.target,
            config.duration.as_secs_f64()
        );
    }
    let recorder = Arc::new(Recorder::default());
    let load =
        Load { world, gateway, recorder: recorder.clone(), sampler, follow_timeout: config.follow_timeout };
    let elapsed = driver::drive(config, load).await;
    let facts = RunFacts {
        endpoint: &config.endpoint,
        target: config.target,
        mix: &mix,
        credentials: config.credentials.describe(),
        duration: config.duration,
        elapsed,
        notes,
    };
    Ok(Report::new(facts, &recorder.tallies()))
}
