//! Authentication over real HTTP: tokens signed with keys made here, checked by the gateway against the keys a real
//! HTTP server in the test publishes, found through OpenID Connect discovery.

use std::{
    sync::{
        Arc, LazyLock, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header, encode,
    jwk::{Jwk, JwkSet},
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use shop_gateway::auth::settings::AuthSettings;

use crate::helpers::{TestApp, spawn_app_with};

const AUDIENCE: &str = "shop";

/// A key the test issuer signs with.
struct TestKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public half, PEM: what an attacker would use as an HMAC secret.
    public_pem: String,
}

impl TestKey {
    fn rsa(kid: &str) -> Self {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        Self { kid: kid.to_owned(), algorithm: Algorithm::RS256, encoding, public_pem }
    }

    fn p256(kid: &str) -> Self {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = secret.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        Self { kid: kid.to_owned(), algorithm: Algorithm::ES256, encoding, public_pem }
    }

    /// The public key as a JWK, named by its `kid` and declaring its algorithm, as issuers publish them.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this key but names `kid` in the header.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let header = Header { kid: Some(kid.to_owned()), ..Header::new(self.algorithm) };
        encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Making an RSA key takes a while: one for the whole test binary.
static RSA_KEY: LazyLock<TestKey> = LazyLock::new(|| TestKey::rsa("rsa-1"));

/// An OpenID Connect issuer: its discovery document and its keys (which a test may change), over real HTTP,
/// counting how often the keys are fetched.
struct TestIssuer {
    url: String,
    keys: Arc<RwLock<JwkSet>>,
    key_fetches: Arc<AtomicUsize>,
}

impl TestIssuer {
    async fn spawn(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let keys = Arc::new(RwLock::new(JwkSet { keys: keys.iter().map(|key| key.jwk()).collect() }));
        let key_fetches = Arc::new(AtomicUsize::new(0));
        let configuration = json!({ "issuer": url, "jwks_uri": format!("{url}/keys") });
        let (served_keys, counted) = (keys.clone(), key_fetches.clone());
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(configuration) }))
            .route(
                "/keys",
                get(move || async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Json(served_keys.read().unwrap().clone())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, keys, key_fetches }
    }

    fn publish(&self, key: &TestKey) {
        self.keys.write().unwrap().keys.push(key.jwk());
    }

    fn key_fetches(&self) -> usize {
        self.key_fetches.load(Ordering::SeqCst)
    }

    /// Valid claims for `subject`, with `changes` applied (a `null` removes a claim).
    fn claims(&self, subject: &str, changes: Value) -> Value {
        let now = now();
        let mut claims = json!({
            "iss": self.url, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now - 1, "exp": now + 300,
        });
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => claims.as_object_mut().unwrap().remove(name),
                value => claims.as_object_mut().unwrap().insert(name.clone(), value.clone()),
            };
        }
        claims
    }

    fn staff_claims(&self) -> Value {
        self.claims("ops", json!({ "roles": ["staff"] }))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn spawn_gateway_trusting(issuer: &TestIssuer) -> TestApp {
    let issuer_url = issuer.url.clone();
    spawn_app_with(move |settings| {
        settings.auth = AuthSettings {
            issuer: Some(issuer_url),
            audience: Some(AUDIENCE.to_owned()),
            ..AuthSettings::default()
        }
    })
    .await
}

const CREATE_ACCOUNT: &str = r#"mutation { createAccount(account: { name: "Ada" }) { id } }"#;
const LIST_ACCOUNTS: &str = "{ accounts { id } }";

/// An HTTP answer: status, `WWW-Authenticate`, and the body.
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

/// POSTs `query` to `/graphql` with `Authorization: <authorization>` when given.
async fn graphql(app: &TestApp, authorization: Option<&str>, query: &str) -> Answer {
    let mut request = app.http.post(format!("{}/graphql", app.base_url)).json(&json!({ "query": query }));
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    answer(request.send().await.unwrap()).await
}

/// POSTs an account to the REST API with `Authorization: <authorization>` when given.
async fn rest_create_account(app: &TestApp, authorization: Option<&str>) -> Answer {
    let mut request =
        app.http.post(format!("{}/api/v1/account", app.base_url)).json(&json!({ "name": "Ada" }));
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    answer(request.send().await.unwrap()).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let challenge =
        response.headers().get(header::WWW_AUTHENTICATE).map(|value| value.to_str().unwrap().to_owned());
    Answer { status, challenge, body: response.json().await.unwrap() }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token with `alg: none` and no signature, which a careless verifier accepts.
fn unsigned(claims: &Value) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
    format!("{}.{}.", part(&json!({ "alg": "none", "typ": "JWT", "kid": RSA_KEY.kid })), part(claims))
}

#[tokio::test]
async fn tokens_signed_with_rs256_or_es256_by_the_issuer_are_accepted() {
    let ec_key = TestKey::p256("ec-1");
    let issuer = TestIssuer::spawn(&[&RSA_KEY, &ec_key]).await;
    let app = spawn_gateway_trusting(&issuer).await;

    for (key, subject) in [(&*RSA_KEY, "alice"), (&ec_key, "bob")] {
        let answer =
            graphql(&app, Some(&bearer(&key.sign(&issuer.claims(subject, json!({}))))), CREATE_ACCOUNT).await;

        assert_eq!(answer.status, StatusCode::OK, "{:?}: {:#}", key.algorithm, answer.body);
        assert!(answer.body["data"]["createAccount"]["id"].is_string(), "{:#}", answer.body);
    }
    // The lower-case scheme is the same scheme (RFC 9110: schemes are case-insensitive).
    let lower_case = format!("bearer {}", RSA_KEY.sign(&issuer.staff_claims()));
    let answer = graphql(&app, Some(&lower_case), LIST_ACCOUNTS).await;
    assert_eq!(answer.body["data"]["accounts"].as_array().unwrap().len(), 2, "{:#}", answer.body);
}

#[tokio::test]
async fn every_token_that_does_not_verify_is_refused_with_401_and_a_challenge_and_nothing_is_written() {
    let ec_key = TestKey::p256("ec-1");
    let issuer = TestIssuer::spawn(&[&RSA_KEY, &ec_key]).await;
    let app = spawn_gateway_trusting(&issuer).await;
    let now = now();
    let alice = |changes: Value| issuer.claims("alice", changes);
    // Another key under a published key's name: its signatures do not verify with the published key.
    let impostor = TestKey::p256("ec-1");
    let hmac_with_the_public_key = encode(
        &Header { kid: Some(RSA_KEY.kid.clone()), ..Header::new(Algorithm::HS256) },
        &alice(json!({})),
        &EncodingKey::from_secret(RSA_KEY.public_pem.as_bytes()),
    )
    .unwrap();
    let refused: Vec<(&str, String, &str)> = vec![
        ("expired", bearer(&RSA_KEY.sign(&alice(json!({ "exp": now - 120 })))), "invalid_token"),
        ("not yet valid", bearer(&RSA_KEY.sign(&alice(json!({ "nbf": now + 120 })))), "invalid_token"),
        (
            "another issuer",
            bearer(&RSA_KEY.sign(&alice(json!({ "iss": "http://elsewhere" })))),
            "invalid_token",
        ),
        ("another audience", bearer(&RSA_KEY.sign(&alice(json!({ "aud": "billing" })))), "invalid_token"),
        ("no subject", bearer(&RSA_KEY.sign(&alice(json!({ "sub": null })))), "invalid_token"),
        ("no expiry", bearer(&RSA_KEY.sign(&alice(json!({ "exp": null })))), "invalid_token"),
        ("bad signature", bearer(&impostor.sign(&alice(json!({})))), "invalid_token"),
        ("alg none", bearer(&unsigned(&alice(json!({})))), "invalid_token"),
        ("HS256 with the public key as secret", bearer(&hmac_with_the_public_key), "invalid_token"),
        ("RS256 named as the EC key", bearer(&RSA_KEY.sign_as("ec-1", &alice(json!({})))), "invalid_token"),
        ("not a JWT", bearer("a.b.c"), "invalid_token"),
        ("no token", "Bearer".to_owned(), "invalid_request"),
        ("an empty token", "Bearer ".to_owned(), "invalid_request"),
        ("two tokens", "Bearer abc def".to_owned(), "invalid_request"),
        ("another scheme", "Basic YWxpY2U6c2VjcmV0".to_owned(), "invalid_request"),
    ];

    for (case, authorization, error) in &refused {
        let answer = graphql(&app, Some(authorization), CREATE_ACCOUNT).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{case}: {:#}", answer.body);
        assert_eq!(answer.body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{case}");
        assert!(answer.body.get("data").is_none(), "{case}: {:#}", answer.body);
        let challenge = answer.challenge.unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
        assert!(challenge.starts_with(r#"Bearer realm="shop", error=""#), "{case}: {challenge}");
        assert!(challenge.contains(&format!(r#"error="{error}""#)), "{case}: {challenge}");

        let answer = rest_create_account(&app, Some(authorization)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{case} (REST): {:#}", answer.body);
        assert_eq!(answer.body["code"], "UNAUTHENTICATED", "{case} (REST)");
        assert_eq!(answer.body["type"], "/api/v1/problems/unauthenticated", "{case} (REST)");
        assert!(answer.challenge.is_some_and(|challenge| challenge.contains(error)), "{case} (REST)");
    }

    let staff = bearer(&RSA_KEY.sign(&issuer.staff_claims()));
    let accounts = graphql(&app, Some(&staff), LIST_ACCOUNTS).await;
    assert_eq!(accounts.body["data"]["accounts"], json!([]), "nothing may have been written");
}

#[tokio::test]
async fn a_new_key_is_fetched_once_and_accepted_and_unknown_kids_cannot_hammer_the_issuer() {
    let issuer = TestIssuer::spawn(&[&RSA_KEY]).await;
    let app = spawn_gateway_trusting(&issuer).await;
    let staff = bearer(&RSA_KEY.sign(&issuer.staff_claims()));
    assert_eq!(graphql(&app, Some(&staff), LIST_ACCOUNTS).await.status, StatusCode::OK);
    assert_eq!(issuer.key_fetches(), 1);

    // The issuer rotates: a new key, published before the first token signed with it.
    let rotated = TestKey::p256("ec-2");
    issuer.publish(&rotated);
    let answer =
        graphql(&app, Some(&bearer(&rotated.sign(&issuer.claims("alice", json!({}))))), CREATE_ACCOUNT).await;
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    assert_eq!(issuer.key_fetches(), 2, "the unknown kid is fetched once");

    // A flood of made-up kids, all at once: refused, and no more fetches until the refresh interval passes.
    let flood = (0..20).map(|i| {
        let token = bearer(&rotated.sign_as(&format!("made-up-{i}"), &issuer.claims("mallory", json!({}))));
        let app = &app;
        async move { graphql(app, Some(&token), CREATE_ACCOUNT).await.status }
    });
    let statuses = futures::future::join_all(flood).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(issuer.key_fetches(), 2, "unknown kids must not each cost a fetch");
    // Known keys keep working meanwhile.
    assert_eq!(graphql(&app, Some(&staff), LIST_ACCOUNTS).await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_only_the_catalog_can_be_browsed() {
    let issuer = TestIssuer::spawn(&[&RSA_KEY]).await;
    let app = spawn_gateway_trusting(&issuer).await;

    let products = graphql(&app, None, "{ products { id } }").await;
    assert_eq!(products.status, StatusCode::OK);
    assert_eq!(products.body["data"]["products"], json!([]), "{:#}", products.body);

    for query in
        [LIST_ACCOUNTS, CREATE_ACCOUNT, r#"{ order(id: "0190a0e0-0000-7000-8000-000000000000") { id } }"#]
    {
        let answer = graphql(&app, None, query).await;
        assert_eq!(
            answer.body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{query}: {:#}",
            answer.body
        );
    }
    let answer = rest_create_account(&app, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:#}", answer.body);
    assert_eq!(answer.challenge.as_deref(), Some(r#"Bearer realm="shop""#));
    assert_eq!(answer.body["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn while_the_issuers_keys_cannot_be_fetched_tokens_are_answered_503_with_retry_after() {
    // An issuer that is not listening: bind a port, then free it.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let app = spawn_app_with(move |settings| {
        settings.auth = AuthSettings {
            issuer: Some(unreachable),
            audience: Some(AUDIENCE.to_owned()),
            ..AuthSettings::default()
        }
    })
    .await;
    let token = bearer(&RSA_KEY.sign(&json!({ "sub": "alice" })));

    let response = app
        .http
        .post(format!("{}/graphql", app.base_url))
        .header(header::AUTHORIZATION, &token)
        .json(&json!({ "query": LIST_ACCOUNTS }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body:#}");
}

/// The `gateway` binary with `env` (and no other `AUTH_*` variable), its stderr captured.
fn gateway_binary(env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AUTH_")) {
        command.env_remove(name);
    }
    command
        .env("HTTP_LISTEN_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    command
}

#[test]
fn the_gateway_binary_will_not_start_open_by_accident_and_warns_when_told_to() {
    let refused = gateway_binary(&[]).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("AUTH_ISSUER") && stderr.contains("AUTH_MODE=disabled"), "{stderr}");

    let mut open = gateway_binary(&[("AUTH_MODE", "disabled")]).spawn().unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(open.stderr.take().unwrap()), &mut first_line)
        .unwrap();
    open.kill().unwrap();
    open.wait().unwrap();
    assert!(first_line.contains("WARN") && first_line.contains("Authentication is DISABLED"), "{first_line}");
}
