//! Log setup shared by every binary.

use tracing_subscriber::{EnvFilter, fmt};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Postgres notices (`relation … already exists, skipping` from idempotent migrations) are not for a newcomer's
/// terminal; sqlx logs them at `info`.
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Logging settings, flattened into every binary's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetrySettings {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which logs to keep, in `tracing` filter syntax (for example `info,sqlx=warn`).
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_format: LogFormat::Text, log_filter: DEFAULT_LOG_FILTER.to_owned() }
    }
}

/// Installs the global log subscriber. Call once, first thing in `main`. Logs go to stderr, so that commands
/// whose output is data (`shop tail`) keep stdout clean.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|error| {
        eprintln!(
            "Ignoring the invalid log filter {:?} ({error}); using `{DEFAULT_LOG_FILTER}`.",
            settings.log_filter
        );
        EnvFilter::new(DEFAULT_LOG_FILTER)
    });
    match settings.log_format {
        LogFormat::Text => fmt().with_writer(std::io::stderr).with_env_filter(filter).init(),
        LogFormat::Json => fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
    }
}
