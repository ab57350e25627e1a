//! `shop --auth dev` end to end over real HTTP: tokens minted the way `shop token` mints them, the access rules
//! they lead to, and a running `shop` binary whose logs, at debug level, hold none of the tokens it saw nor its
//! private key.

use std::{
    io::{BufRead, BufReader},
    process::Command,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop::dev_auth::{self, LocalAuth, TokenArgs};
use shop_testkit::{TestDatabase, graphql::GraphqlClient};
use uuid::Uuid;

use crate::helpers::{TestShop, shop_binary, start_shop_with};

/// An id nothing has.
const MISSING: &str = "0190a0e0-0000-7000-8000-000000000000";

/// A token from the running shop's development issuer, minted as `shop token` mints it.
pub(crate) async fn token(shop: &TestShop, subject: &str, staff: bool) -> String {
    let args = TokenArgs { subject: subject.to_owned(), staff, lifetime_minutes: 10, port: None };
    dev_auth::token(&args, shop.shop.gateway_addr).await.expect("a token")
}

fn codes(response: &Value) -> Vec<&str> {
    let errors = response["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    errors.iter().filter_map(|error| error["extensions"]["code"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_development_issuer_a_customer_orders_for_itself_and_others_accounts_look_missing() {
    // Arrange: the shop with its development issuer, on port 0
    let shop = start_shop_with(|settings| settings.auth = LocalAuth::Dev).await;
    let base = format!("http://{}", shop.shop.gateway_addr);
    let anonymous = GraphqlClient::new(&base);
    let staff = anonymous.with_token(token(&shop, "ops", true).await);
    let alice = anonymous.with_token(token(&shop, "alice", false).await);
    let bob = anonymous.with_token(token(&shop, "bob", false).await);

    // Act
    let product = staff.create_product("Kettle", "Boils water", 24.99).await;
    let alice_account = alice.create_account("Alice").await;
    let bob_account = bob.create_account("Bob").await;
    let order = alice.create_order(&alice_account, &[(&product, 2)]).await;
    let probe = "query($id: String!) { accounts(id: $id) { id name orders { id } } }";
    let bobs_as_alice = alice.graphql(probe, json!({ "id": bob_account })).await;
    let missing_as_alice = alice.graphql(probe, json!({ "id": MISSING })).await;
    let rest_bobs = shop
        .http
        .get(format!("{base}/api/v1/account/{bob_account}"))
        .bearer_auth(token(&shop, "alice", false).await)
        .send()
        .await
        .unwrap();
    let all = staff.data("{ accounts { id } }", json!({})).await;
    let without_token = anonymous.graphql("{ accounts { id } }", json!({})).await;
    let discovery: Value = shop
        .http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert
    assert!(["CONFIRMED", "PENDING"].contains(&order["status"].as_str().unwrap()), "{order:#}");
    let alices = alice.data("{ accounts { id orders { id } } }", json!({})).await;
    assert_eq!(alices["accounts"], json!([{ "id": alice_account, "orders": [{ "id": order["id"] }] }]));
    let as_if_missing: Value =
        serde_json::from_str(&bobs_as_alice.to_string().replace(&bob_account, MISSING)).unwrap();
    assert_eq!(as_if_missing, missing_as_alice, "bob's account looks missing to alice");
    assert_eq!(rest_bobs.status(), StatusCode::NOT_FOUND);
    let mut ids: Vec<&str> =
        all["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = [alice_account.as_str(), bob_account.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "staff sees both accounts");
    assert_eq!(codes(&without_token), ["UNAUTHENTICATED"], "{without_token:#}");
    assert_eq!(discovery["issuer"], base, "the issuer is the gateway's real address, not port 0");

    // The key file goes with the shop, and `shop token` says no shop is running.
    let port = shop.shop.gateway_addr.port();
    let key_file = dev_auth::key_file_path(port);
    assert!(key_file.exists());
    shop.stop().await;
    assert!(!key_file.exists(), "a clean stop removes {}", key_file.display());
    let args = TokenArgs { subject: "alice".into(), staff: false, lifetime_minutes: 10, port: Some(port) };
    let error = dev_auth::token(&args, "127.0.0.1:8080".parse().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("No development shop is running"), "{error:#}");
}

/// The `shop` binary with `arguments`, on fresh databases and free ports, logging at debug level.
struct ShopProcess {
    child: std::process::Child,
    /// What it printed on stdout until it said it was ready: the banner.
    banner: Vec<String>,
    stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    stderr: std::thread::JoinHandle<String>,
    _databases: Vec<TestDatabase>,
}

impl ShopProcess {
    fn start(arguments: &[&str]) -> Self {
        let prefix = format!("test_{}_", Uuid::now_v7().simple());
        let databases = ["account", "catalog", "order"]
            .iter()
            .map(|name| TestDatabase::adopt(&format!("{prefix}{name}")))
            .collect();
        let mut child = shop_binary(&prefix)
            .args(arguments)
            .env("POSTGRES_URL", shop_testkit::postgres_server_url())
            .spawn()
            .expect("Failed to start the shop binary");
        let stderr = child.stderr.take().unwrap();
        // Bytes, not `lines()`: a line that is not UTF-8 must be scanned too.
        let stderr = std::thread::spawn(move || {
            let mut logs = Vec::new();
            std::io::Read::read_to_end(&mut BufReader::new(stderr), &mut logs).unwrap();
            String::from_utf8_lossy(&logs).into_owned()
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        while banner.last().is_none_or(|line: &String| !line.contains("Press Ctrl-C to stop")) {
            let line = stdout.next().expect("the shop exited before it was up").unwrap();
            banner.push(line);
        }
        Self { child, banner, stdout, stderr, _databases: databases }
    }

    /// The gateway's base URL, as the banner gives it.
    fn base_url(&self) -> String {
        let line = self.banner.iter().find_map(|line| line.split("GraphQL playground: ").nth(1)).unwrap();
        line.trim().trim_end_matches("/playground").to_owned()
    }

    /// Runs `shop token` against this shop, as a user in another terminal does; returns its stdout.
    fn shop_token(&self, arguments: &[&str]) -> String {
        let port = self.base_url().rsplit(':').next().unwrap().to_owned();
        let output = Command::new(env!("CARGO_BIN_EXE_shop"))
            .arg("token")
            .args(arguments)
            .args(["--port", &port])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Stops it with SIGTERM; returns the rest of its stdout and all it logged on stderr.
    fn stop(mut self) -> (String, String) {
        let terminated = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(terminated.success());
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stdout.map_while(Result::ok).collect();
        let logs = self.stderr.join().unwrap();
        assert!(status.success(), "the shop exited with {status}:\n{logs}");
        (rest.join("\n"), logs)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_the_development_key_never_appear_in_the_logs() {
    // Arrange: a running `shop --auth dev`, its staff token from the banner, a customer token from `shop token`,
    // and its private key from the key file
    let shop = ShopProcess::start(&["--auth", "dev"]);
    let base = shop.base_url();
    let staff_at =
        shop.banner.iter().position(|line| line.starts_with("Staff token")).expect("a staff token");
    let staff = shop.banner[staff_at + 1].trim().to_owned();
    let alice = shop.shop_token(&["--subject", "alice"]).trim().to_owned();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let key_file: Value =
        serde_json::from_str(&std::fs::read_to_string(dev_auth::key_file_path(port)).unwrap()).unwrap();
    let private_key = key_file["private_key_pem"].as_str().unwrap().to_owned();
    // Tokens that do not verify: alice's claims under staff's signature, and alice's claims made staff.
    let (alice_signed, _) = alice.rsplit_once('.').unwrap();
    let bad_signature = format!("{alice_signed}.{}", staff.rsplit('.').next().unwrap());
    let (header, _) = alice_signed.split_once('.').unwrap();
    let staff_claims = staff.split('.').nth(1).unwrap();
    let forged = format!("{header}.{staff_claims}.{}", alice.rsplit('.').next().unwrap());
    let malformed = ["Bearer not a token", "Basic YWxpY2U6aHVudGVyMg==", "Bearer <script>"];

    // Act: each token and header over GraphQL and REST
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let authorizations = [&staff, &alice, &bad_signature, &forged].map(|token| format!("Bearer {token}"));
    for authorization in authorizations.iter().map(String::as_str).chain(malformed) {
        let graphql = http
            .post(format!("{base}/graphql"))
            .header("authorization", authorization)
            .json(&json!({ "query": "mutation { createAccount(account: {name: \"Alice\"}) { id } }" }));
        let rest = http.get(format!("{base}/api/v1/accounts")).header("authorization", authorization);
        for request in [graphql, rest] {
            statuses.push(request.send().await.unwrap().status().as_u16());
        }
    }
    let banner = shop.banner.join("\n");
    let (rest_of_stdout, logs) = shop.stop();

    // Assert: the valid tokens worked, the others were refused, and the logs hold none of them
    assert_eq!(statuses[..4], [200, 200, 200, 200], "{statuses:?}");
    assert!(statuses[4..].iter().all(|status| *status == 401), "{statuses:?}");
    assert!(logs.contains("Requests are authenticated with bearer tokens"), "debug logs were captured");
    println!("Scanned {} log lines.", logs.lines().count());
    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    let mut secrets = vec![staff.clone(), alice.clone(), bad_signature.clone(), forged.clone()];
    secrets.extend([&staff, &alice].map(|token| signature(token)));
    secrets.extend(["YWxpY2U6aHVudGVyMg==".to_owned(), "<script>".to_owned()]);
    // The key's base64 lines, each long enough to be unmistakable.
    let key_lines: Vec<String> =
        private_key.lines().filter(|line| !line.starts_with("-----")).map(str::to_owned).collect();
    assert!(!key_lines.is_empty());
    for secret in &secrets {
        let line = logs.lines().find(|line| line.contains(secret.as_str()));
        assert!(line.is_none(), "a token or header in the logs: {}", line.unwrap_or_default());
    }
    // The banner prints the staff token on purpose (on stdout, apart from the logs), never the key.
    let everything_printed = format!("{banner}\n{rest_of_stdout}\n{logs}");
    for line in &key_lines {
        assert!(!everything_printed.contains(line.as_str()), "the private key was printed");
    }
    assert!(!dev_auth::key_file_path(port).exists(), "the key file went with the shop");
}
