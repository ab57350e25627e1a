//! Who is calling: bearer tokens (JWT, RS256/ES256/EdDSA) verified against an OpenID Connect issuer's keys.
//!
//! The [`authenticate`] middleware runs before every route. A request without `Authorization` is anonymous; one
//! with a token that verifies is a customer, or staff when the token's roles claim says so; anything else — a
//! malformed header, a bad signature, an expired token, another issuer or audience, an unknown key — is answered
//! `401` with `WWW-Authenticate` and never reaches a handler, so nothing is read or written for it. What each kind
//! of caller may do is decided where the services are called ([`crate::services`]), so GraphQL and REST apply the
//! same rules.
//!
//! - [`settings`]: `AUTH_MODE`, the issuer, the audience, the staff claim, the key refresh limits.
//! - `keys`: the issuer's keys, discovered, cached and refreshed (rate-limited).
//! - `token`: checking one token.
//! - [`dev`]: a development issuer for `shop --auth dev` and the tests.

pub mod dev;
mod keys;
pub mod settings;
mod token;

use std::sync::Arc;

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::Response,
    routing::get,
};
use jsonwebtoken::jwk::JwkSet;
use shop_events::TraceContext;
use shop_platform::{identity::Identity, trace};

use self::{
    keys::KeyStore,
    settings::{AuthMode, AuthSettings},
    token::{TokenError, Verifier},
};
use crate::{http::refusal, schema::errors::ErrorCode, services::Call};

/// Who a request is from, as [`authenticate`] established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is disabled: every caller may do everything, as in the original system.
    Unrestricted,
    /// No token: the catalog may be browsed, nothing else.
    Anonymous,
    /// A verified token.
    Authenticated(Identity),
}

/// The `realm` of every `WWW-Authenticate` challenge.
const REALM: &str = "shop";
/// The challenge of a request that sent no credentials.
pub(crate) const CHALLENGE: &str = r#"Bearer realm="shop""#;

/// Verifies the tokens requests carry, or lets every request through when authentication is disabled.
#[derive(Debug, Clone)]
pub struct Authenticator {
    verifier: Option<Arc<Verifier>>,
    /// Keys the gateway serves, when they were given in the process (the development issuer).
    local_keys: Option<Arc<JwkSet>>,
    issuer: Option<String>,
}

impl Authenticator {
    /// The authenticator `settings` describe. Fails when authentication is required but not configured: a gateway
    /// must not start open by accident.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        if settings.mode == AuthMode::Disabled {
            tracing::warn!(
                "Authentication is DISABLED (AUTH_MODE=disabled): every caller may read every account and order, \
                 place orders for anyone and change the catalog. Never expose this gateway."
            );
            return Ok(Self { verifier: None, local_keys: None, issuer: None });
        }
        let (Some(issuer), Some(audience)) = (&settings.issuer, &settings.audience) else {
            anyhow::bail!(
                "Authentication is required: set AUTH_ISSUER and AUTH_AUDIENCE (and AUTH_JWKS_URL if the keys are \
                 not at the issuer's discovery address), or AUTH_MODE=disabled for a local run"
            );
        };
        let keys = match &settings.local_keys {
            Some(set) => {
                KeyStore::local(set).context("The keys given to the gateway cannot verify tokens")?
            }
            None => KeyStore::remote(
                issuer,
                settings.jwks_url.as_deref(),
                std::time::Duration::from_secs(settings.jwks_min_refresh_seconds),
                std::time::Duration::from_secs(settings.jwks_max_age_seconds),
            )?,
        };
        tracing::info!(issuer, audience, staff_claim = %settings.staff_claim, "Requests are authenticated with bearer tokens.");
        let verifier = Verifier::new(
            keys,
            issuer.clone(),
            audience.clone(),
            settings.leeway(),
            &settings.staff_claim,
            settings.staff_role.clone(),
        );
        Ok(Self {
            verifier: Some(Arc::new(verifier)),
            local_keys: settings.local_keys.clone(),
            issuer: Some(issuer.clone()),
        })
    }

    /// Who sent a request with `headers`.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, TokenError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller::Unrestricted);
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if headers.contains_key(header::AUTHORIZATION) {
                Err(TokenError::Malformed("send one Authorization header"))
            } else {
                Ok(Caller::Anonymous)
            };
        };
        let token = bearer_token(value)?;
        verifier.verify(token).await.map(Caller::Authenticated)
    }

    /// Who opened a WebSocket connection whose `connection_init` carried `authorization` (`Bearer <token>`): browsers
    /// cannot set headers on a WebSocket, so GraphQL clients send the credentials there.
    pub(crate) async fn caller_from_value(&self, authorization: &str) -> Result<Caller, TokenError> {
        let value = HeaderValue::from_str(authorization)
            .map_err(|_| TokenError::Malformed("the Authorization value must be `Bearer <token>`"))?;
        self.caller(&HeaderMap::from_iter([(header::AUTHORIZATION, value)])).await
    }

    /// The issuer's discovery document and keys, served by the gateway when the keys were given in the process,
    /// so that other tools can verify the development issuer's tokens too.
    pub(crate) fn routes(&self) -> Router {
        let (Some(keys), Some(issuer)) = (self.local_keys.clone(), self.issuer.clone()) else {
            return Router::new();
        };
        let configuration = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        });
        Router::new()
            .route("/.well-known/jwks.json", get(move || async move { Json(keys.as_ref().clone()) }))
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(configuration.clone()) }),
            )
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750; the scheme is case-insensitive).
fn bearer_token(value: &HeaderValue) -> Result<&str, TokenError> {
    let malformed = TokenError::Malformed("the Authorization header must be `Bearer <token>`");
    let value = value.to_str().map_err(|_| malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(malformed)?;
    let token68 = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || !token.chars().all(token68) {
        return Err(malformed);
    }
    Ok(token)
}

/// Establishes who sent the request and records it in its extensions as a [`Caller`]; refuses it with `401` when its
/// credentials do not verify.
pub(crate) async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match authenticator.caller(request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return refusal_for(error),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The answer to credentials that do not verify.
fn refusal_for(error: TokenError) -> Response {
    let description = error.description();
    match error {
        TokenError::Malformed(_) => unauthenticated(Some(("invalid_request", description))),
        TokenError::Invalid(_) => unauthenticated(Some(("invalid_token", description))),
        TokenError::KeysUnavailable => refusal::unavailable(description),
    }
}

/// `401` with a `WWW-Authenticate: Bearer` challenge (RFC 6750), and, when credentials were sent, the RFC's error
/// code and why they were refused.
pub(crate) fn unauthenticated(error: Option<(&str, &str)>) -> Response {
    let message = error.map_or("this requires a bearer token", |(_, description)| description);
    let mut response = refusal::refuse(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, message);
    let challenge = match error {
        Some((code, description)) => {
            format!(r#"Bearer realm="{REALM}", error="{code}", error_description="{description}""#)
        }
        None => CHALLENGE.to_owned(),
    };
    if let Ok(challenge) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The [`Call`] a request makes: its trace (the request's span, or continued from its `traceparent` header, or a new
/// one), and its caller
/// as [`authenticate`] recorded it (anonymous if it did not run, which grants the least).
impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        // The request's span (see `http::limits`) when traces are exported; otherwise the caller's trace.
        let trace = trace::current_or(|| {
            TraceContext::continue_from(|name| headers.get(name).and_then(|value| value.to_str().ok()))
        });
        let caller = parts.extensions.get::<Caller>().cloned().unwrap_or(Caller::Anonymous);
        Ok(Self::new(trace, caller))
    }
}
