//! `shop --auth dev`: a development OpenID Connect issuer inside the shop, and `shop token`, which mints its tokens
//! from another process.
//!
//! At start the shop makes a fresh P-256 key ([`DevIssuer`]) whose issuer — the `iss` of every token — is the
//! gateway's own base URL (the gateway serves the public key at `/.well-known/jwks.json`). It writes the private
//! key and that URL to [`key_file_path`]: `$XDG_RUNTIME_DIR/shop-dev-issuer-<gateway port>.json`, or the system's
//! temporary directory when `XDG_RUNTIME_DIR` is not set, readable by the user alone (0600). `shop token` reads
//! that file and signs with the same key. The file is removed when the shop stops cleanly and replaced by the next
//! start otherwise; `shop token` checks that the shop on that port serves the key before it mints anything.
//!
//! Whoever can read the file can mint staff tokens for that shop: a development convenience, never something to
//! deploy (deployed gateways trust a real issuer, `AUTH_ISSUER`).

use std::{
    fs::OpenOptions,
    io::{self, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use shop_gateway::auth::{
    dev::{DEV_AUDIENCE, DevIssuer},
    settings::AuthSettings,
};
use shop_platform::identity::is_sendable_subject;

/// How long the tokens of `shop token` and the banner's staff token are valid by default: a working day.
const DEFAULT_LIFETIME_MINUTES: u64 = 12 * 60;
/// How long `shop token` waits for the running shop to show its keys.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How the local run authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LocalAuth {
    /// No tokens: every caller may do everything, as in the original system.
    Disabled,
    /// Tokens required, from a development issuer running in the shop (`shop token` mints them).
    Dev,
}

/// `shop token`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// Who the token is for (its `sub`). A customer's `createAccount` binds the new account to it.
    #[arg(long)]
    pub subject: String,
    /// A staff token (`roles: ["staff"]`): may change the catalog and see every account and order.
    #[arg(long)]
    pub staff: bool,
    /// How long the token is valid.
    #[arg(long, default_value_t = DEFAULT_LIFETIME_MINUTES)]
    pub lifetime_minutes: u64,
    /// The port of the shop's gateway; by default that of `HTTP_LISTEN_ADDR`, as the shop itself reads it.
    #[arg(long)]
    pub port: Option<u16>,
}

/// What the key file holds.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    issuer: String,
    private_key_pem: String,
}

/// The development issuer of a running shop, and the key file that lets `shop token` sign for it (removed when
/// this is dropped).
pub struct DevAuth {
    issuer: DevIssuer,
    gateway_addr: SocketAddr,
    key_file: Option<PathBuf>,
}

impl std::fmt::Debug for DevAuth {
    // `DevIssuer`'s own `Debug` leaves the private key out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAuth").field("issuer", &self.issuer).field("key_file", &self.key_file).finish()
    }
}

impl DevAuth {
    /// A new issuer for a gateway that will listen on `listen_addr`. Port 0 is resolved here, as the issuer's URL
    /// must name the port the gateway will really have: [`gateway_addr`](Self::gateway_addr) is where to start it.
    pub fn generate(listen_addr: SocketAddr) -> anyhow::Result<Self> {
        let gateway_addr = resolve_port(listen_addr)?;
        let issuer = DevIssuer::generate(&issuer_url(gateway_addr))?;
        Ok(Self { issuer, gateway_addr, key_file: None })
    }

    /// Where the gateway must listen.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// The gateway settings that trust this issuer (its keys given in the process).
    pub fn settings(&self) -> AuthSettings {
        self.issuer.settings()
    }

    pub fn issuer(&self) -> &DevIssuer {
        &self.issuer
    }

    /// Writes the key file, once the gateway listens (so the file only ever names a port the shop holds).
    pub fn write_key_file(&mut self) -> anyhow::Result<&Path> {
        let path = key_file_path(self.gateway_addr.port());
        let contents = KeyFile {
            issuer: self.issuer.issuer().to_owned(),
            private_key_pem: self.issuer.private_key_pem().to_owned(),
        };
        let json = serde_json::to_vec_pretty(&contents).context("Failed to encode the key file")?;
        write_private(&path, &json).with_context(|| {
            format!("Failed to write the development issuer's key file {}", path.display())
        })?;
        Ok(self.key_file.insert(path))
    }

    /// What the banner says: a staff token, and how to mint others.
    pub fn banner(&self) -> anyhow::Result<String> {
        let lifetime = Duration::from_secs(DEFAULT_LIFETIME_MINUTES * 60);
        let staff = self.issuer.mint("staff", true, lifetime)?;
        let port = self.gateway_addr.port();
        let port_flag = if Some(port) == default_port() { String::new() } else { format!(" --port {port}") };
        let base = self.issuer.issuer();
        Ok(format!(
            "Authentication: bearer tokens required, from the development issuer {base} (audience \"{DEV_AUDIENCE}\"); \
             without one, only the catalog can be browsed.\n\
             Staff token (subject \"staff\", valid {hours} h):\n{staff}\n\
             Customer tokens: shop token --subject alice{port_flag}   (from the source tree: cargo run -q -p shop -- \
             token --subject alice{port_flag}; --staff for staff, --lifetime-minutes N)\n\
             Use one: curl -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/accounts",
            hours = DEFAULT_LIFETIME_MINUTES / 60,
        ))
    }
}

impl Drop for DevAuth {
    fn drop(&mut self) {
        if let Some(path) = self.key_file.take() {
            // Nothing to do if it is already gone; a leftover is replaced by the next start.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The banner line of a shop without authentication.
pub const DISABLED_BANNER: &str = "Authentication is disabled: every caller may do everything, as in the original \
    system. `shop --auth dev` requires tokens, from a development issuer.";

/// Where a shop whose gateway listens on `port` keeps its development issuer's key.
pub fn key_file_path(port: u16) -> PathBuf {
    let directory = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|directory| !directory.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    directory.join(format!("shop-dev-issuer-{port}.json"))
}

/// `shop token`: a token signed with the key of the development shop on `args.port`, or else on the port of
/// `listen_addr` (the shop's `HTTP_LISTEN_ADDR`).
pub async fn token(args: &TokenArgs, listen_addr: SocketAddr) -> anyhow::Result<String> {
    anyhow::ensure!(
        is_sendable_subject(&args.subject),
        "--subject must be 1 to 255 printable ASCII characters (spaces allowed)"
    );
    anyhow::ensure!(args.lifetime_minutes > 0, "--lifetime-minutes must be at least 1");
    let port = args.port.unwrap_or(listen_addr.port());
    anyhow::ensure!(
        port != 0,
        "The shop picked its gateway's port at start (HTTP_LISTEN_ADDR has port 0): pass --port"
    );
    let issuer = running_issuer(port).await?;
    issuer.mint(&args.subject, args.staff, Duration::from_secs(args.lifetime_minutes * 60))
}

/// The development issuer of the shop whose gateway listens on `port` on this machine, read from its key file
/// and checked against the keys that shop serves: what `shop token` signs with, for callers that mint many
/// tokens (`shop load`).
pub async fn running_issuer(port: u16) -> anyhow::Result<DevIssuer> {
    let path = key_file_path(port);
    let contents = match std::fs::read_to_string(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => anyhow::bail!(
            "No development shop is running on port {port} ({} does not exist): start one with `shop --auth dev`, \
             or pass the --port of the one running",
            path.display()
        ),
        read => read.with_context(|| format!("Failed to read {}", path.display()))?,
    };
    let file: KeyFile = serde_json::from_str(&contents)
        .with_context(|| format!("{} is not a development issuer's key file", path.display()))?;
    let issuer = DevIssuer::from_private_key_pem(&file.private_key_pem, &file.issuer)?;
    check_served(&issuer, &path).await?;
    Ok(issuer)
}

/// Fails unless the shop at the issuer's URL serves this key: a file left by a shop that was killed would
/// otherwise mint tokens nothing accepts.
async fn check_served(issuer: &DevIssuer, path: &Path) -> anyhow::Result<()> {
    let url = format!("{}/.well-known/jwks.json", issuer.issuer());
    let stale = || {
        format!(
            "{} is left from a shop that did not stop cleanly: start one with `shop --auth dev`",
            path.display()
        )
    };
    let client = reqwest::Client::builder().timeout(CHECK_TIMEOUT).build()?;
    let served: serde_json::Value = match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => response.json().await.unwrap_or_default(),
        Ok(response) => anyhow::bail!(
            "The shop at {} serves no keys ({}); {}",
            issuer.issuer(),
            response.status(),
            stale()
        ),
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("No shop answers at {url}; {}", stale())));
        }
    };
    let ours = serde_json::to_value(issuer.jwks())?;
    let kid = |key: &serde_json::Value| key["kid"].clone();
    let served_kids: Vec<_> = served["keys"].as_array().into_iter().flatten().map(kid).collect();
    anyhow::ensure!(
        served_kids.contains(&kid(&ours["keys"][0])),
        "The shop at {} does not use this key; {}",
        issuer.issuer(),
        stale()
    );
    Ok(())
}

/// `addr`, or for port 0 `addr` with a port free now.
fn resolve_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    // Bound and released at once, since the gateway binds its own listener. Should another process take the port
    // in between, the gateway fails to start ("Failed to listen"); it never trusts an issuer naming another port.
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("Failed to listen on {addr}"))?;
    Ok(listener.local_addr()?)
}

/// The gateway's base URL; an unspecified address (listening everywhere) is named by its loopback address.
pub(crate) fn issuer_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The gateway port `shop token` assumes without `--port`.
fn default_port() -> Option<u16> {
    use clap::Parser as _;
    crate::Cli::try_parse_from(["shop"]).ok().map(|cli| cli.settings.http_listen_addr.port())
}

/// Replaces `path` by a new file only the user may read, holding `contents`.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = OpenOptions::new();
    // `create_new` (O_EXCL) never follows a symbolic link someone planted in a shared temporary directory.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_of_a_gateway_listening_everywhere_is_named_by_loopback() {
        assert_eq!(issuer_url("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(issuer_url("[::]:8080".parse().unwrap()), "http://[::1]:8080");
        assert_eq!(issuer_url("127.0.0.1:9000".parse().unwrap()), "http://127.0.0.1:9000");
    }

    #[test]
    fn port_zero_is_resolved_to_a_real_port_before_the_issuer_is_named() {
        let dev = DevAuth::generate("127.0.0.1:0".parse().unwrap()).unwrap();

        assert_ne!(dev.gateway_addr().port(), 0);
        assert_eq!(dev.issuer().issuer(), format!("http://{}", dev.gateway_addr()));
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_readable_by_the_user_alone_and_removed_with_the_issuer() {
        use std::os::unix::fs::PermissionsExt as _;
        let mut dev = DevAuth::generate("127.0.0.1:0".parse().unwrap()).unwrap();

        let path = dev.write_key_file().unwrap().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        let file: KeyFile = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        drop(dev);

        assert_eq!(mode & 0o777, 0o600);
        assert!(file.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!path.exists(), "the file is removed when the shop stops");
    }
}
