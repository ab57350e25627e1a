//! Clients the team did not write, against the whole shop: Debian's chromium using the playground (a query, and a
//! subscription over WebSocket with the graphql-ws client GraphiQL bundles) and the REST API's reference, graphql-core (Python) introspecting the schema and running the original system's operations,
//! Schemathesis (Python) testing the REST API against its OpenAPI document, grpcio (Python) finding and calling the
//! services by reflection alone, and kcat reading the events. Each runs as its own process from `interop/`;
//! `scripts/install-test-clients` installs them (the README's test command runs it), and a test whose client is
//! missing fails, saying so.

use std::{
    collections::HashMap,
    ffi::OsStr,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use serde_json::Value;

use shop::dev_auth::LocalAuth;

use crate::helpers::{TestShop, start_shop, start_shop_with};

/// What a test says when its client is missing.
const NOT_INSTALLED: &str = "is missing: run scripts/install-test-clients to install the interop clients";
/// Generous: chromium's first start on a busy two-core machine takes seconds.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository's root, which holds `interop/`.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the launcher sits in the workspace").to_path_buf()
}

/// `path`, after checking the install script put it there.
fn installed(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    assert!(path.exists(), "{} {NOT_INSTALLED}", path.display());
    path.to_path_buf()
}

/// The venv's Python, which has the pinned Python clients.
fn python() -> PathBuf {
    installed(repository().join("interop/python/.venv/bin/python"))
}

/// Runs a client to its end and checks that it succeeded; its output.
async fn run_client(program: impl AsRef<OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(repository())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(CLIENT_TIMEOUT, child).await {
        Err(_) => panic!("{} did not finish within {CLIENT_TIMEOUT:?}", program.display()),
        Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {
            panic!("{} {NOT_INSTALLED}", program.display())
        }
        Ok(output) => output.unwrap_or_else(|e| panic!("Failed to run {}: {e}", program.display())),
    };
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}).\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// The client's stdout, one JSON value a line.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect()
}

/// Returns once the order service's projection follows the topics (its consumer group takes about 3 s to form
/// after a start): an order placed for an account and a product was settled from it.
async fn wait_for_the_order_projection(shop: &TestShop) {
    let account = shop.client.create_account("Early").await;
    let product = shop.client.create_product("Tea", "", 4.5).await;
    let order = shop.client.create_order(&account, &[(&product, 1)]).await;
    assert_eq!(shop.settled_order(order["id"].as_str().unwrap()).await["status"], "CONFIRMED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_the_playground_offline_shows_the_schema_docs_and_runs_a_query() {
    // Arrange: chromium with playwright-core, and an account for the query to show.
    installed("/usr/bin/chromium");
    installed(repository().join("interop/browser/node_modules/playwright-core"));
    let shop = start_shop().await;
    shop.client.create_account("Ada").await;
    let script = repository().join("interop/browser/playground.mjs");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop/playground.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!("http://{}/playground", shop.shop.gateway_addr);

    // Act
    let output =
        run_client("node", &[script.to_str().unwrap(), &url, screenshot.to_str().unwrap(), "Ada"]).await;

    // Assert: the docs listed the root fields, the result pane showed the data, and the screenshot was kept.
    let seen = &json_lines(&output)[0];
    let root_fields: Vec<&str> =
        seen["rootFields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(root_fields.contains(&"accounts") && root_fields.contains(&"products"), "{root_fields:?}");
    assert_eq!(seen["result"]["data"]["accounts"][0]["name"], "Ada", "{seen}");
    let png = std::fs::read(&screenshot).expect("the screenshot is kept");
    assert!(png.starts_with(b"\x89PNG"), "{} is not a PNG", screenshot.display());
    println!("The playground's screenshot: {}", screenshot.display());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_a_subscription_in_the_playground_and_sees_an_order_pushed_to_confirmed() {
    // Arrange: an account with a settled order (the subscription's first result), and a product to order.
    installed("/usr/bin/chromium");
    installed(repository().join("interop/browser/node_modules/playwright-core"));
    let shop = start_shop().await;
    wait_for_the_order_projection(&shop).await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let first = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    shop.settled_order(first["id"].as_str().unwrap()).await;
    let script = repository().join("interop/browser/playground-subscription.mjs");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop/playground-subscription.png");
    let url = format!("http://{}/playground", shop.shop.gateway_addr);

    // Act: the page subscribes, then Node places an order for the account.
    let output =
        run_client("node", &[script.to_str().unwrap(), &url, screenshot.to_str().unwrap(), &ada, &kettle])
            .await;

    // Assert: the playground showed the new order, pushed, up to CONFIRMED.
    let seen = &json_lines(&output)[0];
    let placed = seen["placed"].as_str().unwrap();
    let results = seen["results"].as_array().unwrap();
    assert_eq!(results[0]["data"]["accountOrders"]["id"], first["id"], "{seen}");
    let last = &results.last().unwrap()["data"]["accountOrders"];
    assert_eq!((last["id"].as_str(), last["status"].as_str()), (Some(placed), Some("CONFIRMED")), "{seen}");
    println!("The subscription's screenshot: {}", screenshot.display());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_the_api_reference_offline_and_creates_an_account_with_try_it_out() {
    // Arrange: chromium with playwright-core.
    installed("/usr/bin/chromium");
    installed(repository().join("interop/browser/node_modules/playwright-core"));
    let shop = start_shop().await;
    let script = repository().join("interop/browser/reference.mjs");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop/reference.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!("http://{}/api/v1/reference", shop.shop.gateway_addr);

    // Act
    let output =
        run_client("node", &[script.to_str().unwrap(), &url, screenshot.to_str().unwrap(), "Ada"]).await;

    // Assert: the page listed the operations of the document, and showed the account it created, which the API
    // then answers at its Location.
    let seen = &json_lines(&output)[0];
    let operations: Vec<&str> =
        seen["operations"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    for operation in ["POST /api/v1/account", "GET /api/v1/products", "POST /api/v1/order"] {
        assert!(operations.contains(&operation), "{operation} is not in {operations:?}");
    }
    assert_eq!(seen["status"], 201, "{seen}");
    assert_eq!(seen["account"]["name"], "Ada", "{seen}");
    let location = seen["location"].as_str().expect("the page showed the Location header");
    let account: Value = shop
        .http
        .get(format!("http://{}{location}", shop.shop.gateway_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account, seen["account"]);
    let png = std::fs::read(&screenshot).expect("the screenshot is kept");
    assert!(png.starts_with(b"\x89PNG"), "{} is not a PNG", screenshot.display());
    println!("The API reference's screenshot: {}", screenshot.display());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_core_introspects_the_schema_and_runs_the_original_operations_unchanged() {
    // Arrange: a shop whose order projection is up, as it is for a client that comes after the start.
    let python = python();
    let shop = start_shop().await;
    wait_for_the_order_projection(&shop).await;
    let endpoint = format!("http://{}/graphql", shop.shop.gateway_addr);

    // Act
    let output = run_client(&python, &["interop/python/original_operations.py", &endpoint]).await;

    // Assert: the script checks each answer; here, that it went through every step.
    let steps: Vec<Value> = json_lines(&output);
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["introspection", "validation", "mutations", "query", "refusals"]);
    assert_eq!(steps[0]["query"], "Query");
    let order = &steps[2]["order"];
    assert_eq!(order["totalPrice"], 49.98, "createOrder answers the order priced: {order}");
    assert_eq!(steps[3]["accounts"][0]["orders"][0]["id"], order["id"]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_clients_openmetrics_parser_reads_every_dashboard_metric_after_an_order() {
    // Arrange: a shop that confirmed an order, so every family has samples.
    let python = python();
    let shop = start_shop().await;
    wait_for_the_order_projection(&shop).await;
    let account = shop.client.create_account("Ada").await;
    let product = shop.client.create_product("Kettle", "Boils water", 25.0).await;
    let order = shop.client.create_order(&account, &[(&product, 1)]).await;
    assert_eq!(shop.settled_order(order["id"].as_str().unwrap()).await["status"], "CONFIRMED");
    let url = format!("http://{}/metrics", shop.shop.relay_metrics_addr);
    // Consumer lag comes from librdkafka's statistics, every 2 s.
    shop_testkit::eventually(Duration::from_secs(30), "the consumers' lag to be reported", || async {
        let body = shop.http.get(&url).send().await.unwrap().text().await.unwrap();
        body.contains("shop_consumer_lag_records{")
    })
    .await;

    // Act: Prometheus's own Python client fetches and parses it, strictly.
    let output = run_client(&python, &["interop/python/metrics_scrape.py", &url]).await;

    // Assert: it parsed, and holds the order and every metric the Grafana dashboard queries.
    let lines = json_lines(&output);
    assert!(lines[0]["families"].as_u64().unwrap() > 20, "{}", lines[0]);
    let samples = &lines[1..];
    let value = |name: &str| -> f64 {
        samples.iter().filter(|s| s["name"] == name).map(|s| s["value"].as_f64().unwrap()).sum()
    };
    assert!(value("shop_orders_placed_total") >= 1.0);
    assert!(value("shop_order_confirmation_seconds_count") >= 1.0);
    let names: std::collections::BTreeSet<&str> =
        samples.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for metric in crate::dashboard::DASHBOARD_METRICS {
        let counted = format!("{metric}_count");
        assert!(names.contains(metric) || names.contains(counted.as_str()), "{metric} is not served");
    }
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_with_tokens_sees_another_customers_data_exactly_as_missing_data() {
    // Arrange: a shop requiring tokens (`--auth dev`), and tokens of its issuer for staff and two customers.
    let python = python();
    let shop = start_shop_with(|settings| settings.auth = LocalAuth::Dev).await;
    let issuer = shop.shop.dev_auth().expect("a development issuer").issuer();
    let token = |subject: &str, staff: bool| issuer.mint(subject, staff, Duration::from_secs(600)).unwrap();
    let (staff, alice, bob) = (token("ops", true), token("alice", false), token("bob", false));
    let base = format!("http://{}", shop.shop.gateway_addr);

    // Act: the script checks each answer; a failure fails run_client, saying which.
    let output = run_client(&python, &["interop/python/authorization.py", &base, &staff, &alice, &bob]).await;

    // Assert: it went through every step, and compared every probe.
    let steps: Vec<Value> = json_lines(&output);
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["discovery", "validation", "placed", "anonymous", "stock", "others_look_missing"]);
    assert_eq!(steps[0]["issuer"], base.as_str());
    assert_eq!(steps[4]["customer"], serde_json::json!(["FORBIDDEN"]), "{}", steps[4]);
    assert_eq!(steps[5]["compared"], 9, "{}", steps[5]);
    assert_eq!(steps[5]["staff_sees"], 2, "{}", steps[5]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_answer_of_the_rest_api_that_breaks_its_openapi_document() {
    // Arrange: a shop that requires the tokens its document declares (`--auth dev`), whose order projection is up,
    // so orders are answered as they are after a start; Schemathesis sends a staff token, and checks that requests
    // without it, or with a made-up one, are refused where the document says so.
    let python = python();
    let mut shop = start_shop_with(|settings| settings.auth = LocalAuth::Dev).await;
    let issuer = shop.shop.dev_auth().expect("a development issuer").issuer();
    let token = issuer.mint("schemathesis", true, Duration::from_secs(3_600)).unwrap();
    shop.client = shop.client.with_token(&token);
    wait_for_the_order_projection(&shop).await;
    let document = format!("http://{}/api/v1/openapi.json", shop.shop.gateway_addr);
    let authorization = format!("Authorization: Bearer {token}");

    // Act: a failure fails run_client, with Schemathesis's report (a curl line for each failure).
    let output =
        run_client(&python, &["interop/python/openapi_fuzz.py", &document, "--header", &authorization]).await;

    // Assert: every operation was tested, with hundreds of requests, and nothing failed.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("openapi_fuzz.py prints the run's numbers last");
    let run: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("not the run's numbers ({e}): {last}"));
    println!("{run}");
    let operations = &run["operations"];
    assert!(operations["total"].as_u64().unwrap() >= 11, "{run}");
    assert_eq!(operations["tested"], operations["total"], "{run}");
    assert!(run["test_cases"]["generated"].as_u64().unwrap() >= 300, "{run}");
    assert_eq!(run["failures"], serde_json::json!([]), "{run}");
    assert_eq!(run["errors"], serde_json::json!([]), "{run}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_finds_every_service_by_reflection_v1alpha_and_v1_and_calls_it() {
    // Arrange
    let python = python();
    let shop = start_shop().await;
    let addresses: Vec<String> = ["account", "catalog", "order"]
        .iter()
        .map(|name| format!("{name}={}", shop.shop.service_addrs[name]))
        .collect();
    let mut args = vec!["interop/python/reflection.py"];
    args.extend(addresses.iter().map(String::as_str));

    // Act
    let output = run_client(&python, &args).await;

    // Assert
    let services = json_lines(&output);
    let names: Vec<&str> = services.iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(names, ["account", "catalog", "order"]);
    let own =
        ["shop.account.v1.AccountService", "shop.catalog.v1.CatalogService", "shop.order.v1.OrderService"];
    for (service, own) in services.iter().zip(own) {
        assert!(service["listed"].as_array().unwrap().contains(&own.into()), "{service}");
    }
    assert_eq!(services[0]["read"]["name"], "Grace Hopper");
    assert_eq!(services[1]["read"]["price_cents"], "1999", "int64 is a JSON string in proto3's mapping");
    assert_eq!(services[2]["read"]["account_id"], services[0]["read"]["id"]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_an_account_event_with_its_cloudevents_headers() {
    // Arrange: an account, published by the relay.
    let shop = start_shop().await;
    let id = shop.client.create_account("Ada").await;
    let topic = shop.broker.topic("shop.accounts.v1");
    shop.broker.read_topic(&topic, 1, Duration::from_secs(30)).await;

    // Act: kcat, one line per part of the record (the payload is compact JSON, one line).
    let brokers = &shop.shop.kafka_brokers;
    let format = "key=%k\\nheaders=%h\\nvalue=%s\\n";
    let output = run_client(
        "kcat",
        &["-C", "-b", brokers, "-t", &topic, "-o", "beginning", "-c", "1", "-q", "-f", format],
    )
    .await;

    // Assert
    let text = String::from_utf8(output.stdout).unwrap();
    let part = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let headers: HashMap<&str, &str> =
        part("headers=").split(',').filter_map(|h| h.split_once('=')).collect();
    assert_eq!(part("key="), id);
    assert!(headers["ce_id"].parse::<uuid::Uuid>().is_ok(), "{headers:?}");
    assert_eq!(headers["ce_type"], "shop.account.created.v1");
    assert_eq!(headers["ce_source"], "/shop/account");
    assert_eq!(headers["ce_specversion"], "1.0");
    assert_eq!(headers["ce_subject"], id);
    assert_eq!(headers["content-type"], "application/json");
    let value: Value = serde_json::from_str(part("value=")).expect("the payload is JSON");
    assert_eq!(value["account"]["id"], id.as_str(), "{value}");
    assert_eq!(value["account"]["name"], "Ada", "{value}");
    shop.stop().await;
}
