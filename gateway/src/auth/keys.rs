//! The issuer's signing keys: discovered and fetched (or given in the process), cached, and fetched again when a
//! token names a key the cache does not hold (at most once per `AUTH_JWKS_MIN_REFRESH_SECONDS`) or when they are
//! older than `AUTH_JWKS_MAX_AGE_SECONDS`. One fetch at a time: requests that need keys while one is under way wait
//! for it instead of starting their own.
//!
//! Each key's algorithm comes from the key — its declared `alg`, checked against its type, or the type's usual one
//! — never from a token, and only asymmetric signing keys are kept: a token cannot choose `none`, nor have its HMAC
//! checked with a public key as the secret.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse},
};
use serde::Deserialize;
use shop_platform::redact;

/// How long one fetch of the discovery document or the keys may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set accepted, in bytes: a real one is a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// While no key was ever fetched (the issuer down at start), how often a request may try again.
const RETRY_WHILE_EMPTY: Duration = Duration::from_secs(1);

/// A key tokens may be signed with, and the one algorithm it verifies.
pub(crate) struct VerifyingKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithm: Algorithm,
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The issuer's keys are known and none has the token's `kid`.
    Unknown,
    /// The issuer's keys could not be fetched yet.
    Unavailable,
}

/// Where the keys come from.
enum Source {
    /// Given in the process; never fetched.
    Local,
    Remote {
        client: reqwest_tls::Client,
        location: Location,
    },
}

/// Where the key set is.
enum Location {
    Jwks(String),
    /// Discovered from the issuer's OpenID configuration on first use, then kept.
    Issuer {
        issuer: String,
        jwks_uri: tokio::sync::OnceCell<String>,
    },
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<String, Arc<VerifyingKey>>,
    /// The only key of a set of one, for tokens that name no `kid`.
    only: Option<Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct Fetches {
    last_attempt: Option<Instant>,
    /// The last fetch caused by an unknown `kid`, the kind a flood of made-up tokens would cause.
    last_for_unknown_key: Option<Instant>,
}

/// The cached key set and the rules for fetching it again.
pub(crate) struct KeyStore {
    source: Source,
    cache: RwLock<Cache>,
    fetches: tokio::sync::Mutex<Fetches>,
    min_refresh: Duration,
    max_age: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.cache.read().map(|cache| cache.by_id.len()).unwrap_or_default();
        f.debug_struct("KeyStore").field("keys", &keys).finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Keys given in the process.
    pub(crate) fn local(set: &JwkSet) -> anyhow::Result<Self> {
        let store = Self::new(Source::Local, Duration::MAX, Duration::MAX);
        store.store(usable_keys(set.keys.iter().cloned()));
        anyhow::ensure!(
            store.cache.read().is_ok_and(|cache| !cache.by_id.is_empty()),
            "no usable signing key"
        );
        Ok(store)
    }

    /// Keys fetched from `jwks_url`, or discovered from `issuer`'s OpenID configuration.
    pub(crate) fn remote(
        issuer: &str,
        jwks_url: Option<&str>,
        min_refresh: Duration,
        max_age: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest_tls::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("Failed to build the HTTP client for the issuer's keys")?;
        let location = match jwks_url {
            Some(url) => Location::Jwks(url.to_owned()),
            None => Location::Issuer { issuer: issuer.to_owned(), jwks_uri: tokio::sync::OnceCell::new() },
        };
        Ok(Self::new(Source::Remote { client, location }, min_refresh, max_age))
    }

    fn new(source: Source, min_refresh: Duration, max_age: Duration) -> Self {
        Self {
            source,
            cache: RwLock::default(),
            fetches: tokio::sync::Mutex::default(),
            min_refresh,
            max_age,
        }
    }

    /// The key named `kid` (or the only key, for a token that names none), fetching the keys again if the rules
    /// allow it.
    pub(crate) async fn key(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, KeyError> {
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        let Source::Remote { client, location } = &self.source else {
            return Err(KeyError::Unknown);
        };
        let mut fetches = self.fetches.lock().await;
        // A fetch may have finished while this request waited for its turn.
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        let now = Instant::now();
        let since = |at: Option<Instant>| at.map_or(Duration::MAX, |at| now.duration_since(at));
        let fetched_at = self.cache.read().ok().and_then(|cache| cache.fetched_at);
        let may_fetch = match fetched_at {
            None => since(fetches.last_attempt) >= RETRY_WHILE_EMPTY,
            Some(at) if now.duration_since(at) >= self.max_age => {
                since(fetches.last_attempt) >= self.min_refresh
            }
            Some(_) => since(fetches.last_for_unknown_key) >= self.min_refresh,
        };
        if may_fetch {
            if fetched_at.is_some_and(|at| now.duration_since(at) < self.max_age) {
                fetches.last_for_unknown_key = Some(now);
            }
            fetches.last_attempt = Some(now);
            match location.fetch(client).await {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "Fetched the issuer's signing keys.");
                    self.store(keys);
                }
                Err(error) => {
                    tracing::warn!(error.message = %format!("{error:#}"), "Failed to fetch the issuer's signing keys.")
                }
            }
        }
        drop(fetches);
        // Keys past their age still verify while the issuer cannot be reached: better than refusing everyone.
        self.cached(kid, true).ok_or_else(|| {
            match self.cache.read().map(|cache| cache.fetched_at.is_some()) {
                Ok(true) => KeyError::Unknown,
                _ => KeyError::Unavailable,
            }
        })
    }

    fn cached(&self, kid: Option<&str>, even_if_old: bool) -> Option<Arc<VerifyingKey>> {
        let cache = self.cache.read().ok()?;
        // Local keys never age: their store's `max_age` is `Duration::MAX`.
        let fresh = cache.fetched_at.is_some_and(|at| at.elapsed() < self.max_age);
        if !(fresh || even_if_old) {
            return None;
        }
        match kid {
            Some(kid) => cache.by_id.get(kid).cloned(),
            None => cache.only.clone(),
        }
    }

    fn store(&self, keys: Vec<(Option<String>, VerifyingKey)>) {
        let only_one = keys.len() == 1;
        let mut cache = Cache { fetched_at: Some(Instant::now()), ..Cache::default() };
        for (kid, key) in keys {
            let key = Arc::new(key);
            if only_one {
                cache.only = Some(key.clone());
            }
            if let Some(kid) = kid {
                cache.by_id.insert(kid, key);
            }
        }
        if let Ok(mut current) = self.cache.write() {
            *current = cache;
        }
    }
}

impl Location {
    async fn fetch(
        &self,
        client: &reqwest_tls::Client,
    ) -> anyhow::Result<Vec<(Option<String>, VerifyingKey)>> {
        let url = match self {
            Self::Jwks(url) => url.as_str(),
            Self::Issuer { issuer, jwks_uri } => {
                jwks_uri.get_or_try_init(|| discover(client, issuer)).await?.as_str()
            }
        };
        let set: RawJwkSet = get_json(client, url).await?;
        let keys = usable_keys(set.keys.into_iter().filter_map(|key| serde_json::from_value(key).ok()));
        anyhow::ensure!(!keys.is_empty(), "the key set at {} has no usable signing key", redact::url(url));
        Ok(keys)
    }
}

/// A key set as fetched: each key is read on its own, so one of a kind this gateway does not know (an encryption
/// key, a new curve) is skipped instead of failing the whole set.
#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// The `jwks_uri` of `issuer`'s OpenID configuration, which must name that same issuer (OpenID Connect Discovery
/// 1.0, section 4.3).
async fn discover(client: &reqwest_tls::Client, issuer: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Configuration {
        issuer: String,
        jwks_uri: String,
    }
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let configuration: Configuration = get_json(client, &url).await?;
    anyhow::ensure!(
        configuration.issuer == issuer,
        "the OpenID configuration at {} is for issuer {:?}, not {issuer:?}",
        redact::url(&url),
        configuration.issuer
    );
    Ok(configuration.jwks_uri)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest_tls::Client,
    url: &str,
) -> anyhow::Result<T> {
    let shown = redact::url(url);
    let response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest_tls::Response::error_for_status)
        .with_context(|| format!("GET {shown} failed"))?;
    let body = response.bytes().await.with_context(|| format!("GET {shown}: the body could not be read"))?;
    anyhow::ensure!(
        body.len() <= MAX_JWKS_BYTES,
        "GET {shown}: the body is larger than {MAX_JWKS_BYTES} bytes"
    );
    serde_json::from_slice(&body).with_context(|| format!("GET {shown}: the body is not the JSON expected"))
}

/// The keys of `keys` that verify signatures, each with its algorithm.
fn usable_keys(keys: impl Iterator<Item = Jwk>) -> Vec<(Option<String>, VerifyingKey)> {
    keys.filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(|jwk| {
            let algorithm = algorithm_of(&jwk)?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((jwk.common.key_id, VerifyingKey { key, algorithm }))
        })
        .collect()
}

/// The algorithm a key verifies: the one it declares, if that suits its type, else the usual one for its type.
/// Symmetric (`oct`) keys have none: a JWKS is public, so an HMAC key in it would let anyone sign.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let usual = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(parameters) => match parameters.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(parameters) if parameters.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let Some(declared) = &jwk.common.key_algorithm else {
        return Some(usual);
    };
    let declared = Algorithm::from_str(&declared.to_string()).ok()?;
    let fits = declared.family() == usual.family()
        && (usual.family() != jsonwebtoken::AlgorithmFamily::Ec || declared == usual);
    fits.then_some(declared)
}
