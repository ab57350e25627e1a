//! Verifying one bearer token: its signature with the issuer's key, then `iss`, `aud`, `exp`, `nbf` and `sub`;
//! and reading from its claims whether the caller is staff.

use std::time::Duration;

use jsonwebtoken::{Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};
use shop_platform::identity::{Identity, Role, is_sendable_subject};

use super::keys::{KeyError, KeyStore};

/// Why a token was not accepted. What each says may be shown to the caller: it never repeats the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// The request's credentials are not a bearer token (RFC 6750's `invalid_request`).
    Malformed(&'static str),
    /// A bearer token that is not acceptable (RFC 6750's `invalid_token`).
    Invalid(&'static str),
    /// The issuer's keys cannot be fetched, so no token can be checked now.
    KeysUnavailable,
}

impl TokenError {
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Malformed(why) | Self::Invalid(why) => why,
            Self::KeysUnavailable => "the issuer's signing keys cannot be fetched; retry later",
        }
    }
}

/// Checks tokens against one issuer and audience.
#[derive(Debug)]
pub(crate) struct Verifier {
    keys: KeyStore,
    issuer: String,
    audience: String,
    leeway: Duration,
    /// The path of the roles claim, split on dots.
    staff_claim: Vec<String>,
    staff_role: String,
}

impl Verifier {
    pub(crate) fn new(
        keys: KeyStore,
        issuer: String,
        audience: String,
        leeway: Duration,
        staff_claim: &str,
        staff_role: String,
    ) -> Self {
        let staff_claim = staff_claim.split('.').map(str::to_owned).collect();
        Self { keys, issuer, audience, leeway, staff_claim, staff_role }
    }

    /// The identity `token` proves.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        // Fails for `alg: none` too: jsonwebtoken has no such algorithm.
        let header =
            decode_header(token).map_err(|_| TokenError::Invalid("the token is not a signed JWT"))?;
        let key = self.keys.key(header.kid.as_deref()).await.map_err(|error| match error {
            KeyError::Unknown => {
                TokenError::Invalid("the token is signed with a key the issuer does not publish")
            }
            KeyError::Unavailable => TokenError::KeysUnavailable,
        })?;
        // The key decides the algorithm; a token claiming another one (HS256 with the public key as the secret,
        // RS256 against an EC key) is refused before any signature is checked.
        if header.alg != key.algorithm {
            return Err(TokenError::Invalid("the token's algorithm is not its key's"));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        let claims = decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|error| {
            TokenError::Invalid(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidIssuer => "the token is from another issuer",
                ErrorKind::InvalidAudience => "the token is for another audience",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud, sub)",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's",
                _ => "the token is not a valid JWT",
            })
        })?;
        self.identity(&claims.claims)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, TokenError> {
        let subject =
            claims.get("sub").and_then(Value::as_str).filter(|subject| is_sendable_subject(subject)).ok_or(
                TokenError::Invalid("the token's subject must be 1 to 255 printable ASCII characters"),
            )?;
        let role = if self.has_staff_role(claims) { Role::Staff } else { Role::Customer };
        Ok(Identity { subject: subject.to_owned(), role })
    }

    /// Whether the roles claim holds the staff role: as one of an array of strings, or one of the words of a
    /// string (OAuth's space-separated `scope`).
    fn has_staff_role(&self, claims: &Map<String, Value>) -> bool {
        let (first, rest) = self.staff_claim.split_first().expect("split yields at least one part");
        let roles = rest.iter().try_fold(claims.get(first), |value, part| Some(value?.get(part)));
        match roles.flatten() {
            Some(Value::Array(roles)) => roles.iter().any(|role| role.as_str() == Some(&self.staff_role)),
            Some(Value::String(roles)) => roles.split_whitespace().any(|role| role == self.staff_role),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verifier(staff_claim: &str) -> Verifier {
        let keys = KeyStore::remote("http://issuer.invalid", None, Duration::MAX, Duration::MAX).unwrap();
        Verifier::new(
            keys,
            "http://issuer.invalid".into(),
            "shop".into(),
            Duration::ZERO,
            staff_claim,
            "staff".into(),
        )
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn staff_is_read_from_an_array_a_scope_string_or_a_nested_claim() {
        assert!(verifier("roles").has_staff_role(&claims(json!({ "roles": ["customer", "staff"] }))));
        assert!(verifier("scope").has_staff_role(&claims(json!({ "scope": "openid staff email" }))));
        let keycloak = claims(json!({ "realm_access": { "roles": ["staff"] } }));
        assert!(verifier("realm_access.roles").has_staff_role(&keycloak));
    }

    #[test]
    fn a_role_that_only_contains_the_word_or_a_missing_claim_is_not_staff() {
        assert!(!verifier("roles").has_staff_role(&claims(json!({ "roles": ["staffing"] }))));
        assert!(!verifier("scope").has_staff_role(&claims(json!({ "scope": "not-staff" }))));
        assert!(!verifier("realm_access.roles").has_staff_role(&claims(json!({ "realm_access": "staff" }))));
        assert!(!verifier("roles").has_staff_role(&claims(json!({}))));
    }

    #[test]
    fn a_subject_that_cannot_travel_to_the_services_is_refused() {
        let refused = verifier("roles").identity(&claims(json!({ "sub": "line\nbreak" })));

        assert!(matches!(refused, Err(TokenError::Invalid(_))));
    }
}
