//! What a load run is told: where the shop is, who it may act as, what to send, how hard and for how long. The
//! command line ([`LoadArgs`]) becomes a [`LoadConfig`]; a program (the benchmark) builds one directly.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::mix::{Mix, Operation};

/// How hard to drive the shop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Open loop: start this many operations per second, whatever the shop answers. Each latency is measured from
    /// when the operation was due, so a shop that falls behind shows it (no coordinated omission).
    Rate(f64),
    /// Closed loop: this many clients, each sending its next operation as soon as the last one is answered.
    Concurrency(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rate(rate) => write!(f, "{rate} operations/s (open loop)"),
            Self::Concurrency(clients) => write!(f, "concurrency {clients} (closed loop)"),
        }
    }
}

/// Signs tokens for the customers a run creates, and for staff: an issuer the shop trusts (the development issuer
/// of `shop --auth dev`, or a benchmark's own).
pub trait TokenIssuer: Send + Sync + fmt::Debug {
    /// A bearer token whose subject is `subject`; with the staff role when `staff`.
    fn mint(&self, subject: &str, staff: bool) -> anyhow::Result<String>;
}

/// Who the run acts as.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// No token: a shop without authentication, where anyone may do everything.
    #[default]
    Anonymous,
    /// A token per customer the run signs up (a subject of its own each, as accounts belong to a subject), and a
    /// staff token to add products.
    Issuer(Arc<dyn TokenIssuer>),
    /// Tokens obtained elsewhere (a real OpenID Connect provider): every customer request carries `customer`, so
    /// the run uses the one account of that subject (or every account, for a staff token) and signs nobody up;
    /// products are added with `staff` when given, otherwise the run orders what the catalog already has.
    Given { customer: String, staff: Option<String> },
}

impl Credentials {
    /// What the report says about them (never a token).
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Anonymous => "none",
            Self::Issuer(_) => "a token per customer, from an issuer",
            Self::Given { staff: Some(_), .. } => "given customer and staff tokens",
            Self::Given { staff: None, .. } => "a given customer token",
        }
    }
}

/// What the run creates before it measures anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSettings {
    /// Customers signed up, each placing one order (so order look-ups have something to find).
    pub accounts: usize,
    /// Products added to the catalog (when the credentials may), on top of those the catalog already lists.
    pub products: usize,
}

impl Default for SeedSettings {
    fn default() -> Self {
        Self { accounts: 20, products: 50 }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The GraphQL endpoint, `http://host:port/graphql`; subscriptions use the same path over WebSocket.
    pub endpoint: String,
    pub credentials: Credentials,
    pub target: Target,
    /// How long operations are started for; those in flight at the end are waited for and counted.
    pub duration: Duration,
    pub mix: Mix,
    pub seed: SeedSettings,
    /// How long one HTTP request may take before it counts as a `TRANSPORT_TIMEOUT` error.
    pub request_timeout: Duration,
    /// How long `follow-order` waits for its order to settle.
    pub follow_timeout: Duration,
    /// Open loop only: most operations in flight at once. Past it, sends wait (and their latencies, measured
    /// from when they were due, grow): a bound on the generator's own memory, not on what the shop sees.
    pub max_in_flight: usize,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl LoadConfig {
    /// A closed-loop run of `createOrder` alone at `concurrency` for `duration`, with the default seed: what a
    /// benchmark of order placement through the gateway needs.
    pub fn create_orders(
        endpoint: &str,
        credentials: Credentials,
        concurrency: usize,
        duration: Duration,
    ) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            credentials,
            target: Target::Concurrency(concurrency),
            duration,
            mix: Mix::only(Operation::CreateOrder),
            seed: SeedSettings::default(),
            request_timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            follow_timeout: Duration::from_secs(DEFAULT_FOLLOW_TIMEOUT_SECS),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            progress: false,
        }
    }
}

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Above the one-command run's longest wait for a pending order (`ORDER_PROJECTION_WAIT_MS`, 10 s).
const DEFAULT_FOLLOW_TIMEOUT_SECS: u64 = 30;
const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;
const DEFAULT_CONCURRENCY: usize = 8;

/// How the final report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table, one row per operation.
    Text,
    /// The report as one JSON document.
    Json,
}

/// `shop load`'s options that do not depend on how the shop is run (the launcher adds where the shop is by
/// default and its development issuer).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The shop's GraphQL endpoint; by default the gateway's address of the one-command run (`HTTP_LISTEN_ADDR`).
    #[arg(long, env = "SHOP_LOAD_URL")]
    pub url: Option<String>,
    /// A bearer token for every customer request, from the shop's identity provider (for example Keycloak in
    /// docker-compose); the run then uses that subject's account and signs nobody up. Wins over --auth.
    #[arg(long, env = "SHOP_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A staff bearer token, to add the seed products when --token is given; without it the run orders the
    /// products the catalog already has.
    #[arg(long, env = "SHOP_LOAD_STAFF_TOKEN", hide_env_values = true)]
    pub staff_token: Option<String>,
    /// Open loop: operations started per second, whatever the shop answers; latencies count from when each was
    /// due. Not with --concurrency.
    #[arg(long, env = "SHOP_LOAD_RATE", conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Closed loop: clients each sending their next operation once the last is answered (8 when neither this nor
    /// --rate is given).
    #[arg(long, env = "SHOP_LOAD_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// How long to send operations, after the seed; those in flight at the end are waited for.
    #[arg(long, visible_alias = "duration", env = "SHOP_LOAD_DURATION_SECS", default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Weights of the operations, `name=weight` separated by commas; unnamed ones keep their default, 0 leaves
    /// one out. Operations: sign-up, browse, search, create-order, order-by-id, account-orders, follow-order (a
    /// GraphQL subscription over WebSocket).
    #[arg(long, env = "SHOP_LOAD_MIX", default_value_t = Mix::default())]
    pub mix: Mix,
    /// Customers signed up before measuring, each placing one order.
    #[arg(long, env = "SHOP_LOAD_SEED_ACCOUNTS", default_value_t = SeedSettings::default().accounts)]
    pub seed_accounts: usize,
    /// Products added before measuring (besides those the catalog lists already).
    #[arg(long, env = "SHOP_LOAD_SEED_PRODUCTS", default_value_t = SeedSettings::default().products)]
    pub seed_products: usize,
    /// How long one request may take before it counts as an error (`TRANSPORT_TIMEOUT`).
    #[arg(long, env = "SHOP_LOAD_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// How long follow-order waits for its order to settle before it counts as an error (`TIMEOUT`).
    #[arg(long, env = "SHOP_LOAD_FOLLOW_TIMEOUT_SECS", default_value_t = DEFAULT_FOLLOW_TIMEOUT_SECS)]
    pub follow_timeout_secs: u64,
    /// With --rate: most operations in flight at once; past it, sends wait and their latencies grow.
    #[arg(long, env = "SHOP_LOAD_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// How the final report is printed on stdout.
    #[arg(long, env = "SHOP_LOAD_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "SHOP_LOAD_JSON")]
    pub json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, env = "SHOP_LOAD_QUIET")]
    pub quiet: bool,
}

impl LoadArgs {
    /// The run these arguments ask for, against `endpoint` with `credentials` (which the caller resolved, as
    /// only it knows the shop's issuer).
    pub fn config(&self, endpoint: String, credentials: Credentials) -> Result<LoadConfig, String> {
        let target = match (self.rate, self.concurrency) {
            (Some(rate), _) if !(rate.is_finite() && rate > 0.0) => {
                return Err("--rate must be above 0".into());
            }
            (Some(rate), _) => Target::Rate(rate),
            (None, Some(0)) => return Err("--concurrency must be at least 1".into()),
            (None, concurrency) => Target::Concurrency(concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
        };
        if !(self.duration_secs.is_finite() && self.duration_secs > 0.0) {
            return Err("--duration-secs must be above 0".into());
        }
        if self.max_in_flight == 0 || self.timeout_ms == 0 {
            return Err("--max-in-flight and --timeout-ms must be at least 1".into());
        }
        Ok(LoadConfig {
            endpoint,
            credentials,
            target,
            duration: Duration::from_secs_f64(self.duration_secs),
            mix: self.mix.clone(),
            seed: SeedSettings { accounts: self.seed_accounts, products: self.seed_products },
            request_timeout: Duration::from_millis(self.timeout_ms),
            follow_timeout: Duration::from_secs(self.follow_timeout_secs),
            max_in_flight: self.max_in_flight,
            progress: !self.quiet,
        })
    }

    /// The given tokens, if any: `--token` (and `--staff-token`).
    pub fn given_credentials(&self) -> Option<Credentials> {
        self.token.clone().map(|customer| Credentials::Given { customer, staff: self.staff_token.clone() })
    }
}
