//! The one-command local run: every part of the shop in one process — account, catalog and order (projection
//! validation by default), the outbox relay, and the GraphQL gateway — each exactly as its own binary runs it
//! (same `Application`, same settings types), against one Postgres server with a database per service (created if
//! missing), and Kafka at `KAFKA_BROKERS` or, when none is given, an embedded Kafka-protocol broker.
//!
//! Real deployments run each part as its own binary (`account`, `catalog`, `order`, `relay`, `gateway`); this
//! crate wires them together for a laptop, a demo, the system tests and the smoke test. `shop tail` prints a
//! topic's events; `shop load` drives a running shop with a mix of customer operations.
//!
//! - [`dev_auth`]: `--auth dev`, a development token issuer in the process, and `shop token`.
//! - [`tail`]: `shop tail`.
//! - [`load`]: `shop load`, the load generator (`shop-load`) against this or any shop.

pub mod dev_auth;
pub mod load;
pub mod tail;

use std::{collections::HashMap, future::Future, net::SocketAddr};

use anyhow::Context;
use rdkafka::{mocking::MockCluster, producer::DefaultProducerContext};
use shop_catalog::search::SearchSettings;
use shop_events::topics;
use shop_gateway::auth::settings::AuthSettings;
use shop_order::config::ValidationMode;
use shop_platform::{
    kafka::KafkaSettings,
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dev_auth::{DevAuth, LocalAuth};

/// The `shop` command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "shop", version, about = "Runs the whole shop on this machine, and looks at its events.")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `shop` does; running the whole system is the default.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run every part of the shop in this process.
    Run,
    /// Print a topic's events as JSON lines.
    Tail(tail::TailArgs),
    /// Print a token of the development issuer of a shop running with `--auth dev` on this machine.
    Token(dev_auth::TokenArgs),
    /// Drive a running shop (by default this machine's one-command run) through its GraphQL API with a realistic
    /// mix of operations, and report latencies and errors per operation.
    Load(load::LoadCommand),
}

/// Everything the local run can be told. `shop --help` lists it all.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The Postgres server; each service gets its own database on it (`{prefix}account`, `{prefix}catalog`,
    /// `{prefix}order`), created if missing.
    #[arg(
        long,
        env = "POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432",
        hide_env_values = true
    )]
    pub postgres_url: DatabaseUrl,
    /// The prefix of the service databases' names.
    #[arg(long, env = "SHOP_DATABASE_PREFIX", default_value = "shop_")]
    pub database_prefix: String,
    /// Kafka bootstrap servers; when not given, an embedded Kafka-protocol broker runs in this process.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Prepended to the name of every topic and consumer group, so several environments can share one cluster.
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    pub kafka_topic_prefix: String,
    /// Where the GraphQL gateway listens.
    #[arg(long, env = "HTTP_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub http_listen_addr: SocketAddr,
    /// `disabled`: no tokens, every caller may do everything, as in the original system. `dev`: bearer tokens
    /// required, from a development issuer running in this process (`shop token` mints them).
    #[arg(long, env = "SHOP_AUTH", value_enum, default_value_t = LocalAuth::Disabled)]
    pub auth: LocalAuth,
    /// Where the account service listens (gRPC).
    #[arg(long, env = "ACCOUNT_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub account_listen_addr: SocketAddr,
    /// Where the catalog service listens (gRPC).
    #[arg(long, env = "CATALOG_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub catalog_listen_addr: SocketAddr,
    /// Where the order service listens (gRPC).
    #[arg(long, env = "ORDER_GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub order_listen_addr: SocketAddr,
    /// Where the whole process's Prometheus metrics (`/metrics`: every part's, in one registry) and the relay's
    /// health checks are served.
    #[arg(long, env = "RELAY_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub relay_metrics_addr: SocketAddr,
    /// How the order service validates orders.
    #[arg(long, env = "ORDER_VALIDATION", value_enum, default_value_t = ValidationMode::Projection)]
    pub order_validation: ValidationMode,
    /// How long a pending order may wait for the projection before it is rejected.
    #[arg(long, env = "ORDER_PROJECTION_WAIT_MS", default_value_t = 10_000)]
    pub order_projection_wait_ms: u64,
    /// How long `createOrder` may wait for the order service's projection to know the order's account and
    /// products, so as to answer the order priced rather than pending; 0 answers pending at once.
    #[arg(
        long,
        env = "ORDER_PRICED_ANSWER_WAIT_MS",
        default_value_t = shop_order::config::DEFAULT_PRICED_ANSWER_WAIT_MS
    )]
    pub order_priced_answer_wait_ms: u64,
    #[command(flatten)]
    pub relay: shop_relay::config::RelaySettings,
    #[command(flatten)]
    pub search: SearchSettings,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

impl Settings {
    /// The URL of service `name`'s database.
    pub fn database_url(&self, name: &str) -> DatabaseUrl {
        self.postgres_url.with_database(&format!("{}{name}", self.database_prefix))
    }
}

/// The running system: every part started and listening.
pub struct Shop {
    parts: JoinSet<(&'static str, anyhow::Result<()>)>,
    stops: HashMap<&'static str, CancellationToken>,
    stop: CancellationToken,
    /// The embedded broker, when there is one; dropping it stops it.
    embedded_kafka: Option<MockCluster<'static, DefaultProducerContext>>,
    /// The development issuer (`--auth dev`); dropping it removes its key file.
    dev_auth: Option<DevAuth>,
    /// Kafka's bootstrap servers (the embedded broker's, or `KAFKA_BROKERS`).
    pub kafka_brokers: String,
    /// Where the gateway listens.
    pub gateway_addr: SocketAddr,
    /// Where each gRPC service listens.
    pub service_addrs: HashMap<&'static str, SocketAddr>,
    /// Where `/metrics` is served: every part's metrics, the process having one registry.
    pub relay_metrics_addr: SocketAddr,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("kafka_brokers", &self.kafka_brokers)
            .field("gateway_addr", &self.gateway_addr)
            .field("service_addrs", &self.service_addrs)
            .finish_non_exhaustive()
    }
}

impl Shop {
    /// Starts every part, printing one line per part as it comes up. Fails, stopping what already started, if
    /// a part cannot start.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let mut shop = Self {
            parts: JoinSet::new(),
            stops: HashMap::new(),
            stop: CancellationToken::new(),
            embedded_kafka: None,
            dev_auth: None,
            kafka_brokers: String::new(),
            gateway_addr: settings.http_listen_addr,
            service_addrs: HashMap::new(),
            relay_metrics_addr: settings.relay_metrics_addr,
        };
        if let Err(error) = shop.start_parts(settings).await {
            // The start-up error is the one worth reporting; failures while stopping are logged.
            let _ = shop.stop_all().await;
            return Err(error);
        }
        Ok(shop)
    }

    /// The development issuer, when the shop runs with `--auth dev`.
    pub fn dev_auth(&self) -> Option<&DevAuth> {
        self.dev_auth.as_ref()
    }

    async fn start_parts(&mut self, settings: &Settings) -> anyhow::Result<()> {
        self.start_kafka(settings)?;
        let kafka = KafkaSettings {
            kafka_topic_prefix: settings.kafka_topic_prefix.clone(),
            ..KafkaSettings::new(self.kafka_brokers.clone())
        };
        if self.embedded_kafka.is_none() {
            // Consumers start before the relay: make sure the topics they subscribe to exist.
            let relay = &settings.relay;
            shop_relay::kafka::ensure_topics(
                &kafka,
                &topics::ALL,
                relay.topic_partitions,
                relay.topic_replication_factor,
                relay.create_topics,
                relay.kafka_startup_timeout(),
            )
            .await?;
        }
        let (account, catalog) = self.start_account_and_catalog(settings, &kafka).await?;
        let order = self.start_order(settings, &kafka, account, catalog).await?;
        self.start_relay(settings, kafka.clone()).await?;
        self.start_gateway(settings, [account, catalog, order], kafka).await
    }

    /// The account and catalog services, built side by side; returns where they listen.
    async fn start_account_and_catalog(
        &mut self,
        settings: &Settings,
        kafka: &KafkaSettings,
    ) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        let account_settings = shop_account::config::Settings {
            listen_addr: settings.account_listen_addr,
            database_url: settings.database_url("account"),
            database: settings.database.clone(),
            // The process's one registry is served once, by the relay: see `start_relay`.
            metrics_addr: None,
            telemetry: settings.telemetry.clone(),
        };
        let catalog_settings = shop_catalog::config::Settings {
            listen_addr: settings.catalog_listen_addr,
            database_url: settings.database_url("catalog"),
            database: settings.database.clone(),
            search: settings.search.clone(),
            kafka: kafka.clone(),
            metrics_addr: None,
            telemetry: settings.telemetry.clone(),
        };
        let (account, catalog) = tokio::try_join!(
            async { shop_account::startup::Application::build(&account_settings).await.context("account") },
            async { shop_catalog::startup::Application::build(&catalog_settings).await.context("catalog") },
        )?;
        let (account_addr, catalog_addr) = (account.local_addr(), catalog.local_addr());
        let search = format!("{:?}", settings.search.search_backend).to_lowercase();
        let account_status =
            format!("gRPC {}   database {}", url(account_addr), account_settings.database_url);
        self.spawn("account", account_status, |stop| account.run_until_stopped(stop));
        let catalog_status = format!(
            "gRPC {}   database {}, search: {search}",
            url(catalog_addr),
            catalog_settings.database_url
        );
        self.spawn("catalog", catalog_status, |stop| catalog.run_until_stopped(stop));
        self.service_addrs.extend([("account", account_addr), ("catalog", catalog_addr)]);
        Ok((account_addr, catalog_addr))
    }

    /// The order service, validating against the account and catalog services or its projection.
    async fn start_order(
        &mut self,
        settings: &Settings,
        kafka: &KafkaSettings,
        account: SocketAddr,
        catalog: SocketAddr,
    ) -> anyhow::Result<SocketAddr> {
        let order_settings = shop_order::config::Settings {
            listen_addr: settings.order_listen_addr,
            database_url: settings.database_url("order"),
            database: settings.database.clone(),
            validation: settings.order_validation,
            projection_wait_ms: settings.order_projection_wait_ms,
            priced_answer_wait_ms: settings.order_priced_answer_wait_ms,
            kafka: kafka.clone(),
            account_service_url: url(account),
            catalog_service_url: url(catalog),
            metrics_addr: None,
            telemetry: settings.telemetry.clone(),
            ..Default::default()
        };
        let order = shop_order::startup::Application::build(&order_settings).await.context("order")?;
        let order_addr = order.local_addr();
        let validation = format!("{:?}", settings.order_validation).to_lowercase();
        let status = format!(
            "gRPC {}   database {}, validation: {validation}",
            url(order_addr),
            order_settings.database_url
        );
        self.spawn("order", status, |stop| order.run_until_stopped(stop));
        self.service_addrs.insert("order", order_addr);
        Ok(order_addr)
    }

    /// The relay of the three services' outboxes. Its metrics listener serves the whole process's registry, so the
    /// services run here bind none of their own.
    async fn start_relay(&mut self, settings: &Settings, kafka: KafkaSettings) -> anyhow::Result<()> {
        let relay_settings = shop_relay::config::Settings {
            database_urls: ["account", "catalog", "order"].map(|name| settings.database_url(name)).to_vec(),
            database: settings.database.clone(),
            kafka,
            relay: settings.relay.clone(),
            metrics_addr: settings.relay_metrics_addr,
            telemetry: settings.telemetry.clone(),
        };
        let relay = shop_relay::startup::Application::build(&relay_settings).await.context("relay")?;
        self.relay_metrics_addr = relay.metrics_addr();
        let status = format!(
            "3 outboxes → {}   metrics of every part http://{}/metrics",
            self.kafka_brokers, self.relay_metrics_addr
        );
        self.spawn("relay", status, |stop| relay.run_until_stopped(stop));
        Ok(())
    }

    /// The gateway in front of the account, catalog and order services.
    async fn start_gateway(
        &mut self,
        settings: &Settings,
        [account, catalog, order]: [SocketAddr; 3],
        kafka: KafkaSettings,
    ) -> anyhow::Result<()> {
        let (listen_addr, auth) = match settings.auth {
            LocalAuth::Disabled => (settings.http_listen_addr, AuthSettings::disabled()),
            LocalAuth::Dev => {
                let dev = self.dev_auth.insert(DevAuth::generate(settings.http_listen_addr)?);
                (dev.gateway_addr(), dev.settings())
            }
        };
        let gateway_settings = shop_gateway::config::Settings {
            listen_addr,
            account_service_url: url(account),
            catalog_service_url: url(catalog),
            order_service_url: url(order),
            auth,
            kafka,
            metrics_addr: None,
            telemetry: settings.telemetry.clone(),
            ..Default::default()
        };
        let gateway =
            shop_gateway::startup::Application::build(&gateway_settings).await.context("gateway")?;
        self.gateway_addr = gateway.local_addr();
        let base = url(self.gateway_addr);
        let auth = match &mut self.dev_auth {
            Some(dev) => format!("development issuer, key in {}", dev.write_key_file()?.display()),
            None => "disabled".to_owned(),
        };
        let status = format!("GraphQL {base}/graphql   REST {base}/api/v1   auth: {auth}");
        self.spawn("gateway", status, |stop| gateway.run_until_stopped(stop));
        Ok(())
    }

    /// Uses `KAFKA_BROKERS`, or starts the embedded broker with the shop's topics.
    fn start_kafka(&mut self, settings: &Settings) -> anyhow::Result<()> {
        match &settings.kafka_brokers {
            Some(brokers) => {
                self.kafka_brokers = brokers.clone();
                println!("  {:<8} up    external at {brokers}", "kafka");
            }
            None => {
                let cluster = MockCluster::new(1).context("Failed to start the embedded Kafka broker")?;
                for topic in topics::ALL {
                    cluster.create_topic(topic.name, 3, 1).context("Failed to create a topic")?;
                }
                self.kafka_brokers = cluster.bootstrap_servers();
                self.embedded_kafka = Some(cluster);
                println!(
                    "  {:<8} up    embedded at {} — in memory: topics start empty on every run and keep only about \
                     the last 5 MiB of each partition, dropping older records (Postgres keeps accounts, products, \
                     orders and projections; consumers see a new log and read it from offset 0). A rebuild that finds \
                     records gone refuses; `account republish` and `catalog republish` refill the topics from \
                     Postgres. Set KAFKA_BROKERS to use a real Kafka.",
                    "kafka", self.kafka_brokers
                );
            }
        }
        Ok(())
    }

    /// Runs a part until the shop stops, or until [`stop_part`](Self::stop_part) stops it alone.
    fn spawn<F, Fut>(&mut self, name: &'static str, status: String, run: F)
    where
        F: FnOnce(tokio_util::sync::WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.stop.child_token();
        let part = run(stop.clone().cancelled_owned());
        self.stops.insert(name, stop);
        self.parts.spawn(async move { (name, part.await) });
        println!("  {name:<8} up    {status}");
    }

    /// Stops one part, as if its process were stopped (for demonstrations and tests of outages).
    pub fn stop_part(&mut self, name: &str) {
        if let Some(stop) = self.stops.get(name) {
            stop.cancel();
        }
    }

    /// Runs until `shutdown` resolves or a part stops on its own (which stops the others), then waits for every
    /// part to finish. Fails if any part failed.
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let result = loop {
            let joined = tokio::select! {
                () = &mut shutdown => break Ok(()),
                Some(joined) = self.parts.join_next() => joined,
            };
            let (name, outcome) = joined.context("A part panicked")?;
            let stopped_on_purpose = self.stops.get(name).is_some_and(CancellationToken::is_cancelled);
            match outcome {
                Ok(()) if stopped_on_purpose => println!("  {name:<8} stopped"),
                Ok(()) => break Err(anyhow::anyhow!("{name} stopped unexpectedly")),
                Err(error) => break Err(error.context(format!("{name} failed"))),
            }
        };
        if let Err(error) = &result {
            tracing::error!(error.cause_chain = ?error, "A part stopped on its own; stopping the others.");
        }
        let stopped = self.stop_all().await;
        result.and(stopped)
    }

    /// Tells every part to stop and waits for them, reporting the first failure.
    async fn stop_all(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut result = Ok(());
        while let Some(joined) = self.parts.join_next().await {
            let (name, outcome) = joined.context("A part panicked")?;
            match outcome {
                Ok(()) => println!("  {name:<8} stopped"),
                Err(error) => {
                    tracing::error!(part = name, error.cause_chain = ?error, "A part failed while stopping.");
                    result = result.and(Err(error.context(format!("{name} failed"))));
                }
            }
        }
        // No more tokens for a shop that stopped.
        self.dev_auth.take();
        // The broker goes last, once nothing talks to it any more.
        self.embedded_kafka.take();
        result
    }
}

/// The URL of a gRPC or HTTP server listening at `addr`.
fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
