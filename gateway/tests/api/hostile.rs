//! Hostile input over real HTTP: what one anonymous caller could send to exhaust the gateway's memory, drain a
//! service's pool, or ride a visitor's browser. Each case is refused cheaply, with a JSON error.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{TestApp, error_codes, spawn_app, spawn_app_with};

const MIB: usize = 1024 * 1024;

impl TestApp {
    async fn post_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{}/graphql", self.base_url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_form_or_text_plain_mutation_is_refused_with_415_and_not_run() {
    let app = spawn_app().await;
    let mutation = json!({ "query": r#"mutation { createAccount(account: {name: "Mallory"}) { id } }"# });

    for content_type in
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
    {
        let response = app.post_raw(content_type, mutation.to_string()).await;

        assert_eq!(response.status(), 415, "{content_type}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&body), ["UNSUPPORTED_MEDIA_TYPE"]);
    }
    let accounts = app.client.data("{ accounts { id } }", json!({})).await;
    assert_eq!(accounts["accounts"], json!([]));
    let accepted = app.post_raw("application/json; charset=utf-8", mutation.to_string()).await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn cross_origin_browsers_get_no_cors_grant_by_default() {
    let app = spawn_app().await;

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base_url))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();

    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "{:?}", preflight.headers());
}

#[tokio::test]
async fn configured_origins_are_granted_cors() {
    let app =
        spawn_app_with(|settings| settings.cors_allowed_origins = vec!["https://shop.example".into()]).await;

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base_url))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();

    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://shop.example");
}

#[tokio::test]
async fn cheap_aliases_of_a_page_of_products_are_refused_by_cost() {
    let app = spawn_app().await;
    let aliases = |n: usize, field: &str| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };

    let products = app
        .client
        .graphql(&aliases(250, "products(pagination: {take: 100}) { description }"), json!({}))
        .await;
    let nested = app
        .client
        .graphql(
            &aliases(100, "accounts(pagination: {take: 100}) { orders { products { description } } }"),
            json!({}),
        )
        .await;
    let one_expensive = app
        .client
        .graphql(
            "{ accounts(pagination: {take: 100}) { orders(pagination: {take: 100}) { products { description } } } }",
            json!({}),
        )
        .await;

    for refused in [&products, &nested, &one_expensive] {
        assert_eq!(error_codes(refused), ["GRAPHQL_VALIDATION_FAILED"], "{refused:#}");
        assert!(refused["data"].is_null());
    }
    let allowed = app
        .client
        .graphql(&aliases(20, "products(pagination: {take: 100}) { description }"), json!({}))
        .await;
    assert!(allowed["errors"].is_null(), "{allowed:#}");
}

#[tokio::test]
async fn the_standard_introspection_query_passes_while_deep_and_wide_queries_are_refused() {
    let app = spawn_app().await;
    let nested = |names: &[&str], leaf: &str| {
        names.iter().rev().fold(leaf.to_owned(), |inner, name| format!("{name} {{ {inner} }}"))
    };
    let deep = format!("{{ {} }}", nested(&["accounts", "orders", "products"].repeat(4), "name"));
    let deep_introspection = format!(
        "{{ {} }}",
        nested(&["__schema", "types", "fields", "type", "fields", "type", "fields"], "name")
    );
    let wide_introspection = format!(
        "{{ __schema {{ {} }} }}",
        (0..100).map(|i| format!("t{i}: types {{ fields {{ name }} }}")).collect::<Vec<_>>().join(" ")
    );
    let wide = format!(
        "{{ {} }}",
        (0..250)
            .map(|i| format!("a{i}: products(pagination: {{take: 100}}) {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    let introspection = app.client.graphql(include_str!("introspection.graphql"), json!({})).await;

    assert!(introspection["errors"].is_null(), "{introspection:#}");
    let types = introspection["data"]["__schema"]["types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["Query", "Mutation", "Account", "Product", "Order", "OrderInput", "__Schema"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for query in [&deep, &deep_introspection, &wide_introspection, &wide] {
        let refused = app.client.graphql(query, json!({})).await;
        assert_eq!(error_codes(&refused), ["GRAPHQL_VALIDATION_FAILED"], "{refused:#}");
        assert!(refused["data"].is_null(), "{refused:#}");
    }
}

#[tokio::test]
async fn many_directives_and_deep_literals_are_refused_before_they_cost_anything() {
    let app = spawn_app().await;
    let directives = format!("{{ accounts {} {{ id }} }}", "@a ".repeat(100_000));
    let brackets = format!("{{ products(query: {}) {{ id }} }}", "[".repeat(100_000));

    let started = Instant::now();
    let directives = app.client.graphql(&directives, json!({})).await;
    let brackets_response = app.post_raw("application/json", json!({ "query": brackets }).to_string()).await;
    println!("100 000 directives and 100 000 brackets refused in {:?}", started.elapsed());

    assert!(!error_codes(&directives).is_empty(), "{directives:#}");
    assert!(directives["errors"][0]["message"].as_str().unwrap().contains("directives"), "{directives:#}");
    assert_eq!(brackets_response.status(), 400);
    let brackets_body: Value = brackets_response.json().await.unwrap();
    assert_eq!(error_codes(&brackets_body), ["GRAPHQL_PARSE_FAILED"]);
    // Still serving.
    assert_eq!(app.client.data("{ accounts { id } }", json!({})).await["accounts"], json!([]));
}

#[tokio::test]
async fn skipping_past_the_maximum_is_bad_user_input() {
    let app = spawn_app().await;

    let response = app.client.graphql("{ products(pagination: {skip: 1000000}) { id } }", json!({})).await;

    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"]);
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("9900"), "{response:#}");
}

#[tokio::test]
async fn pages_of_any_depth_are_read_with_a_cursor() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for name in ["Ada", "Grace", "Edsger", "Barbara", "Donald"] {
        created.push(app.client.create_account(name).await);
    }
    let query = "query($after: String) { accounts(pagination: {take: 2, after: $after}) { id } }";

    let mut read = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.client.data(query, json!({ "after": after })).await;
        let ids: Vec<Value> = page["accounts"].as_array().unwrap().iter().map(|a| a["id"].clone()).collect();
        let Some(last) = ids.last().cloned() else { break };
        read.extend(ids);
        after = last;
    }
    let search = app
        .client
        .graphql(
            "query($after: String) { products(query: \"kettle\", pagination: {after: $after}) { id } }",
            json!({ "after": created[0] }),
        )
        .await;

    assert_eq!(read, created.iter().map(|id| json!(id)).collect::<Vec<_>>());
    assert_eq!(error_codes(&search), ["BAD_USER_INPUT"], "{search:#}");
}

#[tokio::test]
async fn an_answer_above_the_response_limit_is_replaced_by_an_error() {
    let app = spawn_app_with(|settings| settings.graphql_max_response_bytes = 2_000).await;
    let long = "x".repeat(1_000);
    for name in ["Kettle", "Teapot", "Mug"] {
        app.client.create_product(name, &long, 1.0).await;
    }

    let response = app.client.graphql("{ products { description } }", json!({})).await;

    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"]);
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("fewer"), "{response:#}");
}

#[tokio::test]
async fn a_bad_id_is_not_echoed_whole() {
    let app = spawn_app().await;
    let huge = "z".repeat(500_000);

    let response =
        app.client.graphql("query($id: String!) { order(id: $id) { id } }", json!({ "id": huge })).await;

    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"]);
    assert!(response.to_string().len() < 1_000, "{} bytes", response.to_string().len());
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|settings| settings.http_header_read_timeout_ms = 1_000).await;
    let mut connection = TcpStream::connect(app.address()).await.unwrap();
    connection.write_all(b"POST /graphql HTTP/1.1\r\nHost: shop\r\n").await.unwrap();

    let started = Instant::now();
    let mut closed = false;
    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle().take(200) {
        if connection.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0; 256];
        let read = tokio::time::timeout(Duration::from_millis(100), connection.read(&mut buffer)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed = true;
            break;
        }
    }

    println!("slowloris connection closed after {:?}", started.elapsed());
    assert!(closed, "the gateway kept a connection that never finished its headers for 20 s");
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_are_shed_with_503_and_retry_after() {
    let app = spawn_app_with(|settings| settings.http_max_in_flight = 1).await;
    // One request in flight: its body never ends.
    let mut slow = TcpStream::connect(app.address()).await.unwrap();
    slow.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shed = app.http.get(format!("{}/health", app.base_url)).send().await.unwrap();

    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: Value = shed.json().await.unwrap();
    assert_eq!(error_codes(&body), ["UNAVAILABLE"]);
    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        if app.http.get(format!("{}/health", app.base_url)).send().await.unwrap().status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the gateway kept refusing after the request in flight went away");
}

/// The gateway binary on its own (its services need not be up to refuse a body), so its memory is its own.
struct GatewayProcess {
    child: Child,
    address: SocketAddr,
}

impl GatewayProcess {
    async fn start() -> Self {
        let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env("HTTP_LISTEN_ADDR", address.to_string())
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("AUTH_MODE", "disabled")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = Self { child, address };
        for _ in 0..100 {
            if TcpStream::connect(address).await.is_ok() {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not start");
    }

    /// The most memory the process has held (`VmHWM`), in bytes.
    fn peak_rss(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
    }

    /// Sends `head` and then `total` bytes of body, as fast as the gateway takes them, and returns the status the
    /// gateway answered with.
    async fn send(&self, head: String, total: usize, chunked: bool) -> u16 {
        let mut connection = TcpStream::connect(self.address).await.unwrap();
        connection.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b' '; MIB];
        let mut sent = 0;
        while sent < total {
            let written = if chunked {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                connection.write_all(&framed).await
            } else {
                connection.write_all(&chunk).await
            };
            if written.is_err() {
                break; // The gateway answered and closed: it does not read what it refused.
            }
            sent += chunk.len();
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        answer.split_whitespace().nth(1).and_then(|status| status.parse().ok()).unwrap_or(0)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_64_mib_body_is_refused_with_413_without_being_held() {
    let gateway = GatewayProcess::start().await;
    let request = |content_type: &str, framing: &str| {
        format!(
            "POST /graphql HTTP/1.1\r\nHost: shop\r\nContent-Type: {content_type}\r\n{framing}Connection: close\r\n\r\n"
        )
    };
    // Warm up: the peak of an ordinary request is the baseline.
    let small = r#"{"query":"{ __typename }"}"#;
    let warm =
        format!("{}{small}", request("application/json", &format!("Content-Length: {}\r\n", small.len())));
    assert_eq!(gateway.send(warm, 0, false).await, 200);
    let baseline = gateway.peak_rss();

    let declared = request("application/json", &format!("Content-Length: {}\r\n", 64 * MIB));
    let streamed = request("application/json", "Transfer-Encoding: chunked\r\n");
    let multipart = request("multipart/form-data; boundary=x", &format!("Content-Length: {}\r\n", 64 * MIB));
    let statuses = [
        gateway.send(declared, 64 * MIB, false).await,
        gateway.send(streamed, 64 * MIB, true).await,
        gateway.send(multipart, 64 * MIB, false).await,
    ];
    let peak = gateway.peak_rss();

    println!(
        "gateway peak RSS: {:.1} MiB after a small request, {:.1} MiB after three 64 MiB bodies",
        baseline as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    assert_eq!(statuses, [413, 413, 413]);
    assert!(peak < baseline + 16 * MIB, "the peak grew by {} bytes", peak - baseline);
}

/// Gives `account_id` `orders` confirmed orders of `lines` lines each, every line with a `description_chars`-long
/// description, straight into the order service's database (placing 10 000 orders one by one would only slow the
/// test; reading them is what is tested).
async fn seed_orders(app: &TestApp, account_id: &str, orders: i64, lines: i32, description_chars: i32) {
    let pool = sqlx::PgPool::connect(&app.orders_database.url).await.unwrap();
    sqlx::query(
        "INSERT INTO orders (id, account_id, status, total_price_cents, version, created_at, updated_at)
         SELECT gen_random_uuid(), $1::uuid, 'confirmed', 100 * $2, 2, now(), now() FROM generate_series(1, $3)",
    )
    .bind(account_id)
    .bind(lines)
    .bind(orders)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_number, product_id, quantity, product_name, product_description,
                                  unit_price_cents)
         SELECT o.id, n, gen_random_uuid(), 1, 'Kettle', repeat('d', $2), 100
         FROM orders o CROSS JOIN generate_series(0, $1 - 1) AS n",
    )
    .bind(lines)
    .bind(description_chars)
    .execute(&pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_account_with_10_000_large_orders_is_read_page_by_page() {
    let app = spawn_app().await;
    let account_id = app.client.create_account("Ada").await;
    seed_orders(&app, &account_id, 10_000, 10, 1_000).await;
    let page = |skip: i32, take: i32| {
        let query = "query($id: String, $skip: Int!, $take: Int!) {
            accounts(id: $id) { orders(pagination: {skip: $skip, take: $take}) { id products { description } } }
        }";
        app.client.graphql(query, json!({ "id": account_id, "skip": skip, "take": take }))
    };

    let started = Instant::now();
    let first = app
        .client
        .data("query($id: String) { accounts(id: $id) { orders { id } } }", json!({ "id": account_id }))
        .await;
    let deep = page(9_900, 100).await;
    println!(
        "10 000 orders: the default page and the last page of 100 (1 MB) read in {:?}",
        started.elapsed()
    );

    assert_eq!(first["accounts"][0]["orders"].as_array().unwrap().len(), 20);
    let last_of_first = first["accounts"][0]["orders"][19]["id"].clone();
    let after = app
        .client
        .data(
            "query($id: String, $after: String) { accounts(id: $id) { orders(pagination: {after: $after}) { id } } }",
            json!({ "id": account_id, "after": last_of_first }),
        )
        .await;
    let second_by_skip = page(20, 20).await;
    assert_eq!(
        after["accounts"][0]["orders"],
        second_by_skip["data"]["accounts"][0]["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| json!({ "id": o["id"] }))
            .collect::<Value>()
    );
    assert!(deep["errors"].is_null(), "{deep:#}");
    assert_eq!(deep["data"]["accounts"][0]["orders"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_page_of_orders_too_large_for_one_answer_is_bad_user_input_not_a_decode_error() {
    let app = spawn_app().await;
    let account_id = app.client.create_account("Ada").await;
    // 20 orders of 100 lines with 5 000-character descriptions: 10 MB, above the 4 MiB a gRPC message may hold.
    seed_orders(&app, &account_id, 20, 100, 5_000).await;

    let response = app
        .client
        .graphql(
            "query($id: String) { accounts(id: $id) { orders { products { description } } } }",
            json!({ "id": account_id }),
        )
        .await;

    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"], "{response:#}");
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("smaller page"), "{response:#}");
}
