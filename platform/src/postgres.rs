//! Connecting a service to its own Postgres database at start: retry with backoff while the server is not
//! reachable, create the database if it is missing, and never log a password.

use std::{fmt, str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    Connection, Executor, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::time::Instant;

use crate::{backoff::Backoff, redact};

/// A `postgres://` URL. Its `Debug` and `Display` hide the password (in the userinfo or as a query parameter), so
/// settings can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(url::Url);

impl DatabaseUrl {
    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The database the URL names (its path), if any.
    pub fn database_name(&self) -> Option<&str> {
        Some(self.0.path().trim_start_matches('/')).filter(|name| !name.is_empty())
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, name: &str) -> Self {
        let mut url = self.0.clone();
        url.set_path(name);
        Self(url)
    }

    /// The URL to hand to sqlx, and the names of the parameters left out: those sqlx does not know and whose names
    /// look secret (`sslpassword`, `api_token`). sqlx ignores a parameter it does not know, logging its value at
    /// WARN; leaving these out changes nothing but that log line.
    fn for_sqlx(&self) -> (url::Url, Vec<String>) {
        let (kept, left_out): (Vec<_>, Vec<_>) = self.0.query_pairs().into_owned().partition(|(name, _)| {
            SQLX_PARAMETERS.contains(&name.as_str())
                || name.starts_with("options[")
                || !redact::is_secret_name(name)
        });
        if left_out.is_empty() {
            return (self.0.clone(), Vec::new());
        }
        let mut url = self.0.clone();
        url.query_pairs_mut().clear().extend_pairs(kept);
        if url.query() == Some("") {
            url.set_query(None);
        }
        (url, left_out.into_iter().map(|(name, _)| name).collect())
    }
}

/// The connect parameters sqlx 0.9 reads from a URL (`sqlx-postgres` `options/parse.rs`).
const SQLX_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!("expected a postgres:// URL, got a {}:// one", url.scheme()));
        }
        Ok(Self(url))
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL through [`redact::url`]: no userinfo password, no `?password=` (libpq and sqlx accept both).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact::url(self.0.as_str()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

const DEFAULT_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 60;

/// Connection pool and start-up settings, flattened into every service's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct PoolSettings {
    /// Most connections the process keeps open to its database.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub database_max_connections: u32,
    /// How long a query waits for a free connection before the call fails as UNAVAILABLE.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = DEFAULT_ACQUIRE_TIMEOUT_MS)]
    pub database_acquire_timeout_ms: u64,
    /// How long to keep retrying at start while Postgres cannot be reached.
    #[arg(long, env = "DATABASE_STARTUP_TIMEOUT_SECS", default_value_t = DEFAULT_STARTUP_TIMEOUT_SECS)]
    pub database_startup_timeout_secs: u64,
    /// Create the database at start if it does not exist (needs the CREATEDB privilege).
    #[arg(long, env = "DATABASE_CREATE_IF_MISSING", default_value_t = true, action = clap::ArgAction::Set)]
    pub database_create_if_missing: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            database_max_connections: DEFAULT_MAX_CONNECTIONS,
            database_acquire_timeout_ms: DEFAULT_ACQUIRE_TIMEOUT_MS,
            database_startup_timeout_secs: DEFAULT_STARTUP_TIMEOUT_SECS,
            database_create_if_missing: true,
        }
    }
}

/// How long a pooled connection may sit idle and still be handed out without a ping first.
const TRUSTED_IDLE: Duration = Duration::from_millis(500);

/// Opens a pool on `url`, retrying with exponential backoff while Postgres is unreachable or starting up, and
/// creating the database first if it is missing and `settings` allow it. Fails at once on errors no retry can fix,
/// such as bad credentials.
pub async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> anyhow::Result<PgPool> {
    let (for_sqlx, left_out) = url.for_sqlx();
    for parameter in left_out {
        tracing::warn!(%parameter, "Ignoring a database URL parameter that sqlx does not support; its value is not logged.");
    }
    let options = PgConnectOptions::from_str(for_sqlx.as_str())
        .with_context(|| format!("Invalid database URL {url}"))?;
    let pool_options = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_millis(settings.database_acquire_timeout_ms))
        // sqlx pings every idle connection it hands out: a round trip more per acquire, which under load is a
        // statement more per query. A connection used within the last moment is known alive; only one idle for
        // longer is pinged (HikariCP's aliveBypassWindowMs, 500 ms, does the same).
        .test_before_acquire(false)
        .before_acquire(|connection, metadata| {
            Box::pin(async move {
                if metadata.idle_for > TRUSTED_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        });
    let deadline = Instant::now() + Duration::from_secs(settings.database_startup_timeout_secs);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut attempt = 1_u32;
    loop {
        let error = match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error) => error,
        };
        if sqlstate(&error).as_deref() == Some("3D000") && settings.database_create_if_missing {
            create_database(&options).await?;
            continue;
        }
        let pause = backoff.next_pause();
        if !is_unavailable(&error) || Instant::now() + pause > deadline {
            return Err(error).with_context(|| format!("Failed to connect to Postgres at {url}"));
        }
        tracing::warn!(
            attempt,
            retry_in_ms = pause.as_millis() as u64,
            database = %url,
            error.message = %error,
            "Postgres is not reachable yet; retrying."
        );
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

/// Connects (see [`connect`]) and brings the schema up to date with `migrators`, in order: the shared tables (the
/// outbox, the consumer offsets) first, then the service's own.
pub async fn connect_and_migrate(
    url: &DatabaseUrl,
    settings: &PoolSettings,
    migrators: &[sqlx::migrate::Migrator],
) -> anyhow::Result<PgPool> {
    let pool = connect(url, settings).await?;
    for migrator in migrators {
        migrator.run(&pool).await.with_context(|| format!("Failed to migrate the database at {url}"))?;
    }
    Ok(pool)
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error.as_database_error()?.code().map(|code| code.into_owned())
}

/// Whether `error` means the database is going away or cannot be reached — a later attempt may succeed, so
/// callers are told UNAVAILABLE (retry), never INTERNAL: the connection is lost or cannot be made (I/O, TLS,
/// SQLSTATE class 08), the server is shutting down or starting (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
/// cannot_connect_now, 57P05 idle_session_timeout), it has no connection slot left (53300), or the pool has no
/// connection to give (timed out, closed).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            true
        }
        sqlx::Error::Database(_) => sqlstate(error).is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "57P05" | "53300")
        }),
        _ => false,
    }
}

/// Creates the database `options` names, through the server's `postgres` maintenance database. Another process
/// creating it at the same moment is fine.
async fn create_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().context("The database URL names no database")?.to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("Failed to connect to the `postgres` maintenance database to create the service database")?;
    let statement = format!(r#"CREATE DATABASE "{}""#, name.replace('"', "\"\""));
    match admin.execute(sqlx::AssertSqlSafe(statement)).await {
        Ok(_) => tracing::info!(database = %name, "Created the missing database."),
        // duplicate_database: created concurrently by another process.
        Err(error) if sqlstate(&error).as_deref() == Some("42P04") => {}
        Err(error) => return Err(error).with_context(|| format!("Failed to create database {name}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_never_shows_its_password() {
        let url: DatabaseUrl = "postgres://shop:s3cret@db:5432/shop_account".parse().unwrap();

        assert_eq!(url.to_string(), "postgres://shop:********@db:5432/shop_account");
        assert_eq!(format!("{url:?}"), "\"postgres://shop:********@db:5432/shop_account\"");
        assert_eq!(url.expose(), "postgres://shop:s3cret@db:5432/shop_account");
        assert_eq!(url.database_name(), Some("shop_account"));
    }

    #[test]
    fn a_password_given_as_a_query_parameter_is_hidden_too() {
        let url: DatabaseUrl =
            "postgres://shop@db/shop_order?sslmode=require&password=s3cret&sslpassword=k3y".parse().unwrap();

        assert_eq!(
            url.to_string(),
            "postgres://shop@db/shop_order?sslmode=require&password=********&sslpassword=********"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.with_database("other").database_name(), Some("other"));
        assert!(url.with_database("other").expose().contains("password=s3cret"));
    }

    #[test]
    fn parameters_sqlx_would_ignore_and_log_are_left_out_when_their_names_look_secret() {
        let url: DatabaseUrl =
            "postgres://u:pw@db/shop?sslmode=disable&sslpassword=k3y&password=pw2&api_token=t0k&connect_timeout=5"
                .parse()
                .unwrap();
        let plain: DatabaseUrl = "postgres://u@db/shop?sslmode=disable".parse().unwrap();

        let (for_sqlx, left_out) = url.for_sqlx();

        assert_eq!(
            for_sqlx.as_str(),
            "postgres://u:pw@db/shop?sslmode=disable&password=pw2&connect_timeout=5"
        );
        assert_eq!(left_out, ["sslpassword", "api_token"]);
        assert_eq!(plain.for_sqlx(), (plain.0.clone(), Vec::new()));
    }

    #[test]
    fn only_postgres_urls_are_accepted() {
        assert!("mysql://root@localhost/shop".parse::<DatabaseUrl>().is_err());
        assert!("not a url".parse::<DatabaseUrl>().is_err());
        assert!("postgresql://localhost".parse::<DatabaseUrl>().is_ok());
    }

    #[test]
    fn with_database_swaps_only_the_database() {
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1:5432/a".parse().unwrap();

        assert_eq!(url.with_database("b").expose(), "postgres://postgres@127.0.0.1:5432/b");
    }
}
