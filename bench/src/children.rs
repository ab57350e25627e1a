//! The relay and the gateway run as child processes (this same binary, re-executed in a child mode), so that their
//! memory can be measured on their own.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use anyhow::Context;
use clap::Parser as _;
use shop_platform::shutdown;

use crate::cpu;

/// The first line a child prints, followed by the address it listens on.
const READY: &str = "READY";

/// A running child process.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    /// The address the child printed (metrics for the relay, HTTP for the gateway).
    pub address: String,
}

impl ChildProcess {
    /// Starts this binary as `mode` with `env`, and waits until it says it is ready.
    pub fn start(mode: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        // Quiet children unless asked (`RUST_LOG=shop_relay=info` shows the relay's batches, with timings).
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        command.arg(mode).env("RUST_LOG", log).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // Pools as the in-process services' ([`crate::pool_settings`]).
        command.env("DATABASE_MAX_CONNECTIONS", crate::pool_settings().database_max_connections.to_string());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().with_context(|| format!("Failed to start the {mode} child"))?;
        let part = match mode {
            "child-gateway" => cpu::Part::Gateway,
            "child-relay" => cpu::Part::Relay,
            _ => cpu::Part::OtherChild,
        };
        cpu::register_child(child.id(), part);
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().context("The child exited before it was ready")??;
        let address = first.strip_prefix(READY).context("Unexpected first line")?.trim().to_owned();
        // Keep draining the child's stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, address })
    }

    /// Starts the gateway in front of the three services at these gRPC URLs, on a free port, without
    /// authentication, as the original system ran.
    pub fn gateway(account_url: &str, catalog_url: &str, order_url: &str) -> anyhow::Result<Self> {
        Self::gateway_with_auth(account_url, catalog_url, order_url, &[("AUTH_MODE", "disabled".to_owned())])
    }

    /// The same with `auth`, the gateway's `AUTH_*` environment.
    pub fn gateway_with_auth(
        account_url: &str,
        catalog_url: &str,
        order_url: &str,
        auth: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut env = vec![
            ("HTTP_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("ACCOUNT_SERVICE_URL", account_url.to_owned()),
            ("CATALOG_SERVICE_URL", catalog_url.to_owned()),
            ("ORDER_SERVICE_URL", order_url.to_owned()),
            // The benchmark is one client sending far beyond one customer's share (2 000 requests/s by default).
            ("RATE_LIMIT_PER_SECOND", "0".to_owned()),
        ];
        env.extend_from_slice(auth);
        Self::start("child-gateway", &env)
    }

    /// The most memory the process has held so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Stops the child with SIGTERM and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the child exited with {status}");
        Ok(())
    }
}

/// `shop-bench child-relay`: the relay, configured from the environment like the `relay` binary.
pub async fn run_relay() -> anyhow::Result<()> {
    let settings = shop_relay::config::Settings::parse_from(["relay"]);
    let telemetry = shop_platform::telemetry::init(&settings.telemetry, "relay");
    let result = async {
        let application = shop_relay::startup::Application::build(&settings).await?;
        println!("{READY} {}", application.metrics_addr());
        application.run_until_stopped(shutdown::signal()).await
    }
    .await;
    telemetry.shutdown().await;
    result
}

/// `shop-bench child-gateway`: the gateway, configured from the environment like the `gateway` binary.
pub async fn run_gateway() -> anyhow::Result<()> {
    let settings = shop_gateway::config::Settings::parse_from(["gateway"]);
    let telemetry = shop_platform::telemetry::init(&settings.telemetry, "gateway");
    let result = async {
        let application = shop_gateway::startup::Application::build(&settings).await?;
        println!("{READY} {}", application.local_addr());
        application.run_until_stopped(shutdown::signal()).await
    }
    .await;
    telemetry.shutdown().await;
    result
}

/// `shop-bench child-{account,catalog,order}`: a service, configured from the environment like its binary (the
/// tracing benchmark runs the whole path as processes, each with or without an exporter).
macro_rules! run_service {
    ($name:literal, $crate_name:ident) => {{
        let settings = $crate_name::config::Cli::parse_from([$name]).settings;
        let telemetry = shop_platform::telemetry::init(&settings.telemetry, $name);
        let result = async {
            let application = $crate_name::startup::Application::build(&settings).await?;
            println!("{READY} {}", application.local_addr());
            application.run_until_stopped(shutdown::signal()).await
        }
        .await;
        telemetry.shutdown().await;
        result
    }};
}

pub async fn run_account() -> anyhow::Result<()> {
    run_service!("account", shop_account)
}

pub async fn run_catalog() -> anyhow::Result<()> {
    run_service!("catalog", shop_catalog)
}

pub async fn run_order() -> anyhow::Result<()> {
    run_service!("order", shop_order)
}
