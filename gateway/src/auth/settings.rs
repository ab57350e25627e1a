//! How the gateway authenticates: the issuer it trusts, the audience it expects, the claim that makes staff.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::jwk::JwkSet;

/// Whether requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Bearer tokens are verified; anonymous callers may only browse the catalog.
    Jwt,
    /// Nothing is checked and every caller may do everything, as in the original system. For a local run only;
    /// the gateway warns at every start.
    Disabled,
}

const DEFAULT_LEEWAY_SECONDS: u64 = 30;
const DEFAULT_STAFF_CLAIM: &str = "roles";
const DEFAULT_STAFF_ROLE: &str = "staff";
const DEFAULT_JWKS_MIN_REFRESH_SECONDS: u64 = 60;
const DEFAULT_JWKS_MAX_AGE_SECONDS: u64 = 3_600;

/// The authentication settings. `AUTH_ISSUER` and `AUTH_AUDIENCE` are required unless `AUTH_MODE=disabled`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// `jwt` (the default: tokens required for everything but browsing the catalog) or `disabled`.
    #[arg(long = "auth-mode", env = "AUTH_MODE", value_enum, default_value = "jwt")]
    pub mode: AuthMode,
    /// The OpenID Connect issuer tokens must come from: their `iss`, and where the signing keys are discovered
    /// (`<issuer>/.well-known/openid-configuration`) unless `AUTH_JWKS_URL` is set.
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER")]
    pub issuer: Option<String>,
    /// Where the issuer's signing keys (a JWKS) are, when they are not to be discovered: useful when the gateway
    /// reaches the issuer at another address than the one in its tokens (a container network).
    #[arg(long = "auth-jwks-url", env = "AUTH_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The audience tokens must be issued for (one of their `aud`).
    #[arg(long = "auth-audience", env = "AUTH_AUDIENCE")]
    pub audience: Option<String>,
    /// How far `exp` and `nbf` may be off, for clocks that disagree a little.
    #[arg(long = "auth-leeway-seconds", env = "AUTH_LEEWAY_SECONDS", default_value_t = DEFAULT_LEEWAY_SECONDS)]
    pub leeway_seconds: u64,
    /// The claim that lists a caller's roles or scopes: a name, or a dotted path into nested objects
    /// (`realm_access.roles` for Keycloak); an array of strings or a space-separated string (`scope`).
    #[arg(long = "auth-staff-claim", env = "AUTH_STAFF_CLAIM", default_value = DEFAULT_STAFF_CLAIM)]
    pub staff_claim: String,
    /// The role (or scope) in that claim that makes a caller staff.
    #[arg(long = "auth-staff-role", env = "AUTH_STAFF_ROLE", default_value = DEFAULT_STAFF_ROLE)]
    pub staff_role: String,
    /// Least time between two fetches of the keys caused by tokens naming an unknown key, so a flood of made-up
    /// `kid`s cannot hammer the issuer; a real rotation is picked up by the first token that needs it.
    #[arg(long = "auth-jwks-min-refresh-seconds", env = "AUTH_JWKS_MIN_REFRESH_SECONDS", default_value_t = DEFAULT_JWKS_MIN_REFRESH_SECONDS)]
    pub jwks_min_refresh_seconds: u64,
    /// How long fetched keys are trusted before they are fetched again, so a key the issuer withdrew stops being
    /// accepted.
    #[arg(long = "auth-jwks-max-age-seconds", env = "AUTH_JWKS_MAX_AGE_SECONDS", default_value_t = DEFAULT_JWKS_MAX_AGE_SECONDS)]
    pub jwks_max_age_seconds: u64,
    /// Keys given in the process instead of fetched (the development issuer of `shop --auth dev`); the gateway then
    /// serves them at `/.well-known/jwks.json`.
    #[arg(skip)]
    pub local_keys: Option<Arc<JwkSet>>,
}

impl AuthSettings {
    /// Authentication switched off.
    pub fn disabled() -> Self {
        Self { mode: AuthMode::Disabled, ..Self::default() }
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway_seconds)
    }
}

impl Default for AuthSettings {
    /// As with no flag and no environment variable: authentication required, and not yet configured.
    fn default() -> Self {
        Self {
            mode: AuthMode::Jwt,
            issuer: None,
            jwks_url: None,
            audience: None,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            staff_claim: DEFAULT_STAFF_CLAIM.to_owned(),
            staff_role: DEFAULT_STAFF_ROLE.to_owned(),
            jwks_min_refresh_seconds: DEFAULT_JWKS_MIN_REFRESH_SECONDS,
            jwks_max_age_seconds: DEFAULT_JWKS_MAX_AGE_SECONDS,
            local_keys: None,
        }
    }
}
