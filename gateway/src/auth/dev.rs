//! A development issuer: an ES256 key made at start, tokens signed with it, its public half as a JWKS. It is what
//! `shop --auth dev` runs inside the process, and what the tests sign with — never something to deploy: whoever
//! holds its private key can mint staff tokens.

use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header, encode,
    jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash},
};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde::Serialize;

use super::settings::AuthSettings;

/// The audience of the development issuer's tokens.
pub const DEV_AUDIENCE: &str = "shop";

/// An issuer of signed tokens, for development and tests.
pub struct DevIssuer {
    key: EncodingKey,
    private_key_pem: String,
    kid: String,
    issuer: String,
    jwks: JwkSet,
}

impl std::fmt::Debug for DevIssuer {
    // The private key stays out of every log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims the development issuer signs.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<&'a str>,
}

impl DevIssuer {
    /// An issuer named `issuer` (the `iss` of its tokens) with a new P-256 key.
    pub fn generate(issuer: &str) -> anyhow::Result<Self> {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).context("Failed to encode the development key")?;
        Self::from_private_key_pem(&pem, issuer)
    }

    /// An issuer named `issuer` signing with the P-256 key in `pem` (PKCS #8), as [`private_key_pem`] gave it.
    ///
    /// [`private_key_pem`]: Self::private_key_pem
    pub fn from_private_key_pem(pem: &str, issuer: &str) -> anyhow::Result<Self> {
        let key =
            EncodingKey::from_ec_pem(pem.as_bytes()).context("Not a P-256 private key in PKCS #8 PEM")?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).context("Failed to describe the key")?;
        // RFC 7638's thumbprint: a `kid` that changes exactly when the key does.
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).context("Failed to name the key")?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        Ok(Self {
            key,
            private_key_pem: pem.to_owned(),
            kid,
            issuer: issuer.to_owned(),
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// The `iss` of this issuer's tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The private key, PKCS #8 PEM: to hand to another process that mints tokens for the same issuer.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The public key, as the JWKS a gateway verifies with.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// A token for `subject`, valid from now for `lifetime`; a staff token if `staff`.
    pub fn mint(&self, subject: &str, staff: bool, lifetime: Duration) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: &self.issuer,
            aud: DEV_AUDIENCE,
            sub: subject,
            iat: now,
            nbf: now,
            exp: now + lifetime.as_secs(),
            roles: if staff { vec!["staff"] } else { Vec::new() },
        };
        let header = Header { kid: Some(self.kid.clone()), ..Header::new(Algorithm::ES256) };
        encode(&header, &claims, &self.key).context("Failed to sign a token")
    }

    /// Gateway settings that trust this issuer, with its keys given in the process (no fetch).
    pub fn settings(&self) -> AuthSettings {
        AuthSettings {
            issuer: Some(self.issuer.clone()),
            audience: Some(DEV_AUDIENCE.to_owned()),
            local_keys: Some(std::sync::Arc::new(self.jwks.clone())),
            ..AuthSettings::default()
        }
    }
}
