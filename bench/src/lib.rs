//! `shop-bench`: measures the relay (throughput against a bare producer; commit-to-Kafka latency with and without
//! commit notifications), order placement (through the gateway against the same SQL transaction straight to
//! Postgres, and through a gateway verifying a customer's bearer token against one without; in projection mode,
//! how often `createOrder` answers the priced order, and placement to confirmation of an order with and without
//! the stock saga, and placement to confirmation at a steady rate, to the topic and to the database; with every
//! span exported over OTLP against no exporter) and replay (rebuilding the order projection, against a bare
//! consumer reading the same topics), prints a table and writes `BENCHMARKS.md`. `--only` measures some sections.
//!
//! The relay and the gateway run as child processes (this binary in a child mode) so their peak memory can be
//! read on its own. Kafka is the embedded mock cluster unless `KAFKA_BROKERS` is set; Postgres is the one at
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`), with fresh databases per run.

/// Builds service `$crate_name` on port 0 against `$database`, with default settings otherwise, and runs it;
/// gives its URL and the running server.
macro_rules! spawn_service {
    ($crate_name:ident, $database:expr) => {{
        let settings = $crate_name::config::Settings {
            listen_addr: "127.0.0.1:0".parse()?,
            metrics_addr: Some("127.0.0.1:0".parse()?),
            database_url: $database.url.parse().map_err(anyhow::Error::msg)?,
            database: $crate::pool_settings(),
            ..Default::default()
        };
        let application = $crate_name::startup::Application::build(&settings).await?;
        let url = format!("http://{}", application.local_addr());
        (url, RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown)))
    }};
}

pub mod auth;
pub mod children;
pub mod confirmation;
pub mod cpu;
pub mod orders;
pub mod priced;
pub mod produce;
pub mod relay;
pub mod replay;
pub mod report;
pub mod saga;
pub mod stats;
pub mod traced;

use std::{path::PathBuf, time::Duration};

use shop_testkit::kafka::TestBroker;

/// Most connections each pool of the services this benchmark runs may open. Two whole shops and the SQL baseline
/// share one Postgres, whose default `max_connections` (100) their pools would pass at the services' default of 10
/// each: sqlx keeps what a busy way opened until it has been idle ten minutes. Six is still three times what two
/// cores keep busy. (Closing idle connections sooner would also do, but a short `idle_timeout` makes sqlx 0.9's
/// pool maintenance spin a core forever now and then: launchbadge/sqlx#3645, fixed upstream after 0.9.0.)
const POOL_MAX_CONNECTIONS: u32 = 6;

/// The pool settings of every service this benchmark runs: the defaults, but at most [`POOL_MAX_CONNECTIONS`].
pub(crate) fn pool_settings() -> shop_platform::postgres::PoolSettings {
    shop_platform::postgres::PoolSettings {
        database_max_connections: POOL_MAX_CONNECTIONS,
        ..Default::default()
    }
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(name = "shop-bench", about = "Benchmarks of the relay, order placement and replay.")]
pub struct Cli {
    /// A run of seconds instead of minutes, to check that the benchmarks still work (CI).
    #[arg(long)]
    quick: bool,
    /// Measure only these sections (comma-separated), to work on one of them; the tables are printed, and written
    /// only where `--output` says.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Where to write the report (default `BENCHMARKS.md`, unless `--only` is given).
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<Child>,
}

/// The child modes.
#[derive(Debug, clap::Subcommand)]
pub enum Child {
    /// (internal) Run the relay, configured from the environment.
    ChildRelay,
    /// (internal) Run the gateway, configured from the environment.
    ChildGateway,
    /// (internal) Run the account service, configured from the environment.
    ChildAccount,
    /// (internal) Run the catalog service, configured from the environment.
    ChildCatalog,
    /// (internal) Run the order service, configured from the environment.
    ChildOrder,
}

/// The benchmark's sections, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Relay throughput against a bare producer.
    Relay,
    /// Commit-to-consumer latency, with and without commit notifications.
    Latency,
    /// `createOrder` through the gateway against raw SQL, with and without authentication.
    Placement,
    /// Priced answers in projection mode.
    Priced,
    /// Placement to confirmation, with and without the stock saga.
    Saga,
    /// Placement to confirmation in projection mode at a steady rate.
    Confirmation,
    /// Placement with every span exported against none.
    Tracing,
    /// Rebuilding the order projection from its topics.
    Replay,
}

/// How big each benchmark is.
struct Sizes {
    aggregates: usize,
    versions: i64,
    latency_rate: u32,
    latency_duration: Duration,
    concurrency: &'static [usize],
    placement_duration: Duration,
    /// The concurrency levels of placement to confirmation, with and without the stock saga.
    saga_concurrency: &'static [usize],
    /// The steady rate of placement to confirmation, orders/s.
    confirmation_rate: u32,
    /// The concurrency of placement with tracing on and off.
    traced_concurrency: usize,
    replay_events: usize,
}

const FULL: Sizes = Sizes {
    aggregates: 1_000,
    versions: 100,
    latency_rate: 1_000,
    latency_duration: Duration::from_secs(30),
    concurrency: &[1, 8, 32],
    placement_duration: Duration::from_secs(10),
    saga_concurrency: &[1, 8],
    confirmation_rate: 500,
    traced_concurrency: 8,
    replay_events: 100_000,
};

const QUICK: Sizes = Sizes {
    aggregates: 100,
    versions: 20,
    latency_rate: 100,
    latency_duration: Duration::from_secs(2),
    concurrency: &[1, 4],
    placement_duration: Duration::from_secs(1),
    saga_concurrency: &[1, 4],
    confirmation_rate: 50,
    traced_concurrency: 4,
    replay_events: 2_000,
};

/// Runs the benchmarks (or, in a child mode, the relay or the gateway).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.child {
        Some(Child::ChildRelay) => return children::run_relay().await,
        Some(Child::ChildGateway) => return children::run_gateway().await,
        Some(Child::ChildAccount) => return children::run_account().await,
        Some(Child::ChildCatalog) => return children::run_catalog().await,
        Some(Child::ChildOrder) => return children::run_order().await,
        None => {}
    }
    let sizes = if cli.quick { QUICK } else { FULL };
    let runs = |section| cli.only.is_empty() || cli.only.contains(&section);
    let broker = TestBroker::start().await;
    let mut report = report::Report {
        command: format!("cargo run --release -p shop-bench{}", if cli.quick { " -- --quick" } else { "" }),
        machine: machine(&broker).await,
        throughput: None,
        latency: None,
        placement: None,
        priced: None,
        saga: None,
        confirmation: None,
        tracing: None,
        replay: None,
    };

    if runs(Section::Relay) {
        eprintln!("relay throughput: {} events…", sizes.aggregates * sizes.versions as usize);
        report.throughput = Some(relay::throughput(&broker, sizes.aggregates, sizes.versions).await?);
    }
    if runs(Section::Latency) {
        eprintln!(
            "commit-to-Kafka latency: {}/s for {:?}, twice…",
            sizes.latency_rate, sizes.latency_duration
        );
        report.latency = Some(relay::latency(&broker, sizes.latency_rate, sizes.latency_duration).await?);
    }
    if runs(Section::Placement) {
        eprintln!("order placement at concurrency {:?}…", sizes.concurrency);
        report.placement =
            Some(orders::placement(&broker, sizes.concurrency, sizes.placement_duration).await?);
    }
    if runs(Section::Priced) {
        eprintln!("priced answers in projection mode at concurrency {:?}…", sizes.concurrency);
        report.priced =
            Some(priced::priced_placement(&broker, sizes.concurrency, sizes.placement_duration).await?);
    }
    if runs(Section::Saga) {
        eprintln!(
            "placement to confirmation with the stock saga at concurrency {:?}…",
            sizes.saga_concurrency
        );
        report.saga =
            Some(saga::confirmation(&broker, sizes.saga_concurrency, sizes.placement_duration).await?);
    }
    if runs(Section::Confirmation) {
        eprintln!("placement to confirmation at {} orders/s…", sizes.confirmation_rate);
        report.confirmation = Some(
            confirmation::confirmation(&broker, sizes.confirmation_rate, sizes.placement_duration).await?,
        );
    }
    if runs(Section::Tracing) {
        eprintln!(
            "order placement with every span exported, and without, at concurrency {}…",
            sizes.traced_concurrency
        );
        report.tracing = Some(traced::overhead(sizes.traced_concurrency, sizes.placement_duration).await?);
    }
    if runs(Section::Replay) {
        eprintln!("replay of {} entity events…", sizes.replay_events);
        report.replay = Some(replay::replay(&broker, sizes.replay_events).await?);
    }

    println!("{}", report.tables());
    let output = cli.output.or_else(|| cli.only.is_empty().then(|| PathBuf::from("BENCHMARKS.md")));
    if let Some(output) = output {
        std::fs::write(&output, report.markdown())?;
        eprintln!("Wrote {}", output.display());
    }
    Ok(())
}

/// What the numbers were measured on.
async fn machine(broker: &TestBroker) -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo").lines().find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned));
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|kib| kib.trim().to_owned()));
    let cores = std::thread::available_parallelism().map(|n| n.get().to_string()).unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let postgres = match sqlx::PgPool::connect(&format!("{}/postgres", shop_testkit::postgres_server_url()))
        .await
    {
        Ok(pool) => {
            sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&pool).await.unwrap_or_default()
        }
        Err(_) => String::new(),
    };
    let kafka = if broker.mock().is_some() {
        format!("embedded librdkafka mock cluster (librdkafka {})", rdkafka::util::get_rdkafka_version().1)
    } else {
        format!("external at {}", broker.bootstrap)
    };
    vec![
        ("CPU".into(), format!("{} × {cores} cores", cpu.unwrap_or_default())),
        ("memory".into(), memory.unwrap_or_default()),
        ("kernel".into(), read("/proc/sys/kernel/osrelease").trim().to_owned()),
        ("rustc".into(), rustc),
        ("build".into(), if cfg!(debug_assertions) { "debug".into() } else { "release".into() }),
        ("PostgreSQL".into(), postgres),
        ("Kafka".into(), kafka),
    ]
}
