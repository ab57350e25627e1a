//! `shop load`: the load generator (`shop-load`) pointed at a shop — by default the one-command run's gateway —
//! with, under `--auth dev`, a token per customer from that shop's development issuer, minted as `shop token`
//! mints them. The report goes to stdout (a table, or JSON) and, with `--json`, to a file.

use std::{io::Write, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shop_gateway::auth::dev::DevIssuer;
use shop_load::{Credentials, LoadArgs, Report, TokenIssuer, config::Format};

use crate::dev_auth::{self, LocalAuth};

/// The shortest life of the tokens minted for a run: a working day, as `shop token`'s (longer runs get longer).
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// `shop load`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadCommand {
    /// `disabled`: send no tokens, to a shop without authentication. `dev`: a token per customer (and a staff one
    /// for products) from the development issuer of the shop running with `--auth dev` on this machine, found by
    /// the endpoint's port, as `shop token` finds it.
    #[arg(long, env = "SHOP_AUTH", value_enum, default_value_t = LocalAuth::Disabled)]
    pub auth: LocalAuth,
    #[command(flatten)]
    pub args: LoadArgs,
}

/// Mints with a running shop's development issuer.
#[derive(Debug)]
struct DevTokens {
    issuer: DevIssuer,
    lifetime: Duration,
}

impl TokenIssuer for DevTokens {
    fn mint(&self, subject: &str, staff: bool) -> anyhow::Result<String> {
        self.issuer.mint(subject, staff, self.lifetime)
    }
}

/// Runs the load `command` asks for against the shop at its `--url`, else at `listen_addr` (the one-command run's
/// `HTTP_LISTEN_ADDR`); prints the report to `out` and returns it.
pub async fn load(
    command: &LoadCommand,
    listen_addr: SocketAddr,
    out: &mut impl Write,
) -> anyhow::Result<Report> {
    let args = &command.args;
    let endpoint = match &args.url {
        Some(url) => url.clone(),
        None => {
            anyhow::ensure!(listen_addr.port() != 0, "HTTP_LISTEN_ADDR has port 0: pass the shop's --url");
            format!("{}/graphql", dev_auth::issuer_url(listen_addr))
        }
    };
    let mut config = args.config(endpoint.clone(), Credentials::Anonymous).map_err(anyhow::Error::msg)?;
    config.credentials = match (args.given_credentials(), command.auth) {
        (Some(given), _) => given,
        (None, LocalAuth::Disabled) => Credentials::Anonymous,
        (None, LocalAuth::Dev) => {
            let url = reqwest::Url::parse(&endpoint).with_context(|| format!("{endpoint} is not a URL"))?;
            let port = url.port_or_known_default().context("The endpoint's URL names no port")?;
            let issuer = dev_auth::running_issuer(port).await?;
            let lifetime = TOKEN_LIFETIME.max(config.duration + Duration::from_secs(60 * 60));
            Credentials::Issuer(Arc::new(DevTokens { issuer, lifetime }))
        }
    };
    let report = shop_load::run(&config).await?;
    let json = serde_json::to_string_pretty(&report).context("Failed to encode the report")?;
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("Failed to write {}", path.display()))?;
    }
    match args.format {
        Format::Text => write!(out, "{}", report.to_text())?,
        Format::Json => writeln!(out, "{json}")?,
    }
    Ok(report)
}
