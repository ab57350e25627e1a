//! The shop as separate processes — gateway, account, catalog, order (projection mode), relay, and `shop tail` as
//! the example consumer — each exporting its spans over OTLP to a real receiver (the OpenTelemetry collector's
//! gRPC trace service), so one order can be followed across every hop by its trace alone.
//!
//! Each process also serves its own `/metrics`: scraped and parsed as Prometheus does, they show the order's
//! requests, its placement and confirmation, the consumers caught up, and every metric the Grafana dashboard
//! queries.
//!
//! The services' binaries are the workspace's own (`target/<profile>/{account,catalog,…}`, next to `shop`): the
//! README's test command (`cargo test --workspace`) builds them before any test runs.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use serde_json::{Value, json};
use shop_testkit::{
    TestDatabase, eventually,
    graphql::GraphqlClient,
    kafka::TestBroker,
    otlp::{OtlpReceiver, ReceivedSpan, tree},
};

/// One of the shop's processes, killed if the test ends without stopping it.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Stops it as an orchestrator would (SIGTERM) and checks it exited cleanly, having flushed its spans.
    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill -TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{} exited with {status}; its log: {}", self.name, self.log.display());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace's binary `name`, built next to `shop`.
fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_shop")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: this test runs the services' own binaries; build them first (`cargo build --workspace \
         --bins`, or run the README's test command, which does)",
        path.display()
    );
    path
}

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts `binary` with `env`, exporting spans to `receiver` under `service`, logging JSON to a file.
fn spawn(
    service: &'static str,
    binary: PathBuf,
    args: &[&str],
    env: &[(&str, String)],
    receiver: &OtlpReceiver,
) -> Process {
    let log = std::env::temp_dir().join(format!("shop-observability-{service}-{}.log", uuid::Uuid::now_v7()));
    let child = Command::new(binary)
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("OTEL_SERVICE_NAME", service)
        // Export every 100 ms rather than every 5 s, so the test need not wait.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .unwrap_or_else(|error| panic!("Failed to start {service}: {error}"));
    Process { name: service, child, log }
}

/// POSTs a GraphQL request as part of the trace `traceparent` and returns its `data`.
async fn traced(gateway: &str, traceparent: &str, operation: &str, query: &str, variables: Value) -> Value {
    let response: Value = reqwest::Client::new()
        .post(format!("{gateway}/graphql"))
        .header("traceparent", traceparent)
        .json(&json!({ "query": query, "operationName": operation, "variables": variables }))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("a JSON answer");
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"].clone()
}

/// A new trace's id, the id of a (never exported) client span in it, and that span's `traceparent`.
fn client_trace() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_id = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    (trace_id, parent_id, traceparent)
}

/// The spans of `trace_id` once `complete` says they are all there (within 30 s; the spans so far, as a tree, when
/// they are not).
async fn spans_once(
    receiver: &OtlpReceiver,
    trace_id: &str,
    complete: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.trace(trace_id);
        if complete(&spans) {
            return spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trace {trace_id} is incomplete after 30 s:\n{}\n(all services that sent spans: {:?})",
            tree(&spans),
            receiver
                .spans()
                .iter()
                .map(|span| span.service.clone())
                .collect::<std::collections::BTreeSet<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first span `test` accepts among all received, within 30 s.
async fn eventually_found(
    receiver: &OtlpReceiver,
    what: &str,
    test: impl Fn(&ReceivedSpan) -> bool,
) -> ReceivedSpan {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(span) = receiver.spans().into_iter().find(|span| test(span)) {
            return span;
        }
        assert!(std::time::Instant::now() < deadline, "no span {what} after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(spans: &'a [ReceivedSpan], what: &str, test: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    spans.iter().find(|span| test(span)).unwrap_or_else(|| panic!("no span {what} in\n{}", tree(spans)))
}

fn parent_of<'a>(spans: &'a [ReceivedSpan], span: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|candidate| candidate.span_id == span.parent_span_id)
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut current = parent_of(spans, span);
    while let Some(parent) = current {
        if parent.span_id == ancestor.span_id {
            return true;
        }
        current = parent_of(spans, parent);
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_the_gateway_through_the_relay_to_every_consumer() {
    // Arrange: a broker, a receiver, three databases, and every process on its own.
    let broker = TestBroker::start().await;
    let receiver = OtlpReceiver::start().await;
    let databases =
        [TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await];
    let [account_db, catalog_db, order_db] = &databases;
    let [account, catalog, order, gateway] = [(); 4].map(|()| free_address());
    let kafka = || {
        vec![("KAFKA_BROKERS", broker.bootstrap.clone()), ("KAFKA_TOPIC_PREFIX", broker.topic_prefix.clone())]
    };
    let with_kafka = |mut env: Vec<(&'static str, String)>| {
        env.extend(kafka());
        env
    };
    let metrics_addresses: BTreeMap<&str, SocketAddr> =
        ["account", "catalog", "order", "relay", "gateway"].map(|name| (name, free_address())).into();
    let metrics = |name: &str| ("METRICS_ADDR", metrics_addresses[name].to_string());
    let processes = vec![
        spawn(
            "account",
            binary("account"),
            &[],
            &with_kafka(vec![
                ("GRPC_LISTEN_ADDR", account.to_string()),
                ("DATABASE_URL", account_db.url.clone()),
                metrics("account"),
            ]),
            &receiver,
        ),
        spawn(
            "catalog",
            binary("catalog"),
            &[],
            &with_kafka(vec![
                ("GRPC_LISTEN_ADDR", catalog.to_string()),
                ("DATABASE_URL", catalog_db.url.clone()),
                metrics("catalog"),
            ]),
            &receiver,
        ),
        spawn(
            "order",
            binary("order"),
            &[],
            &with_kafka(vec![
                ("GRPC_LISTEN_ADDR", order.to_string()),
                ("DATABASE_URL", order_db.url.clone()),
                ("ORDER_VALIDATION", "projection".into()),
                // Stored pending and confirmed by the validator: the hop this test follows.
                ("ORDER_PRICED_ANSWER_WAIT_MS", "0".into()),
                ("ORDER_VALIDATION_INTERVAL_MS", "200".into()),
                metrics("order"),
            ]),
            &receiver,
        ),
        spawn(
            "relay",
            binary("relay"),
            &[],
            &with_kafka(vec![
                (
                    "RELAY_DATABASE_URLS",
                    [account_db, catalog_db, order_db].map(|db| db.url.clone()).join(","),
                ),
                ("RELAY_METRICS_ADDR", metrics_addresses["relay"].to_string()),
            ]),
            &receiver,
        ),
        spawn(
            "gateway",
            binary("gateway"),
            &[],
            &with_kafka(vec![
                ("HTTP_LISTEN_ADDR", gateway.to_string()),
                ("AUTH_MODE", "disabled".into()),
                ("ACCOUNT_SERVICE_URL", format!("http://{account}")),
                ("CATALOG_SERVICE_URL", format!("http://{catalog}")),
                ("ORDER_SERVICE_URL", format!("http://{order}")),
                metrics("gateway"),
            ]),
            &receiver,
        ),
        spawn(
            "shop",
            binary("shop"),
            &[
                "tail",
                "--topic",
                &broker.topic("shop.orders.v1"),
                "--group",
                "observability-example",
                "--from-beginning",
            ],
            &kafka(),
            &receiver,
        ),
    ];
    let gateway = format!("http://{gateway}");
    let client = GraphqlClient::new(&gateway);
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(60), "the gateway to see every service serving", || async {
        let ready = http.get(format!("{gateway}/health/ready")).send().await;
        ready.is_ok_and(|response| response.status().is_success())
    })
    .await;

    // Act: an account, a product and an order, each in a trace of its own the test started.
    let (account_trace, _, traceparent) = client_trace();
    let query = "mutation OpenAccount($name: String!) { createAccount(account: {name: $name}) { id } }";
    let opened = traced(&gateway, &traceparent, "OpenAccount", query, json!({ "name": "Ada" })).await;
    let account_id = opened["createAccount"]["id"].as_str().unwrap().to_owned();
    let product_id = client.create_product("Kettle", "Boils water", 25.0).await;
    let (order_trace, client_span, traceparent) = client_trace();
    let query = "mutation PlaceOrder($order: OrderInput!) { createOrder(order: $order) { id status } }";
    let order = json!({ "accountId": account_id, "products": [{ "id": product_id, "quantity": 2 }] });
    let placed = traced(&gateway, &traceparent, "PlaceOrder", query, json!({ "order": order })).await;
    let placed = placed["createOrder"].clone();
    assert_eq!(placed["status"], "PENDING", "stored pending, for the validator to confirm");
    let order_id = placed["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the order to be confirmed", || async {
        let query = "query($id: String!) { order(id: $id) { status } }";
        client.data(query, json!({ "id": order_id })).await["order"]["status"] == "CONFIRMED"
    })
    .await;

    let row: (String, Option<String>, serde_json::Value) =
        sqlx::query_as("SELECT status, traceparent, history FROM orders")
            .fetch_one(&order_db.pool)
            .await
            .unwrap();
    println!("DEBUG order row {row:?} expected trace {order_trace}");
    // Assert: the order's trace holds every hop, each from its own process, in the right relation.
    let orders_topic = broker.topic("shop.orders.v1");
    let spans = spans_once(&receiver, &order_trace, |spans| {
        let sends: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.service == "relay").collect();
        let validated = spans.iter().any(|span| span.name == "validate order");
        // Each of the two records sent, applied by the catalog's consumer and the example consumer (alone or in
        // one batch).
        let applied_by = |consumer: &str, send: &ReceivedSpan| {
            spans.iter().any(|span| span.service == consumer && span.links_to(send))
        };
        sends.len() >= 2
            && validated
            && sends.iter().all(|send| applied_by("catalog", send) && applied_by("shop", send))
    })
    .await;
    println!("The order's trace:\n{}", tree(&spans));

    let request = find(&spans, "POST /graphql (gateway)", |span| {
        span.service == "gateway" && span.name == "POST /graphql"
    });
    assert_eq!(request.kind, SpanKind::Server);
    assert_eq!(request.parent_span_id, client_span, "the caller's span is the request's parent");
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    let operation = find(&spans, "PlaceOrder (gateway)", |span| span.name == "PlaceOrder");
    assert_eq!(operation.parent_span_id, request.span_id);
    let rpc = "shop.order.v1.OrderService/PostOrder";
    let call = find(&spans, "the gRPC call (gateway)", |span| span.service == "gateway" && span.name == rpc);
    assert_eq!(call.kind, SpanKind::Client);
    assert!(descends_from(&spans, call, operation));
    assert_eq!(call.attribute("rpc.system"), Some("grpc"));
    let served = find(&spans, "the gRPC call (order)", |span| span.service == "order" && span.name == rpc);
    assert_eq!(served.kind, SpanKind::Server);
    assert_eq!(served.parent_span_id, call.span_id, "the server's span is the client's child");
    let stored = find(&spans, "the transaction (order)", |span| {
        span.service == "order" && span.attribute("db.operation.name") == Some("TRANSACTION")
    });
    assert_eq!(stored.kind, SpanKind::Client);
    assert_eq!(stored.attribute("db.system.name"), Some("postgresql"));
    assert!(descends_from(&spans, stored, served));
    let sent_placed = find(&spans, "the relay's send of the placed order", |span| {
        span.service == "relay" && span.parent_span_id == stored.span_id
    });
    assert_eq!(sent_placed.kind, SpanKind::Producer);
    assert_eq!(sent_placed.name, format!("send {orders_topic}"));
    assert_eq!(sent_placed.attribute("messaging.destination.name"), Some(orders_topic.as_str()));
    assert!(sent_placed.attribute("messaging.kafka.offset").is_some());
    assert!(sent_placed.attribute("messaging.destination.partition.id").is_some());
    for consumer in ["catalog", "shop"] {
        let applied = find(&spans, &format!("the apply of the placed order ({consumer})"), |span| {
            span.service == consumer && span.kind == SpanKind::Consumer && span.links_to(sent_placed)
        });
        assert_eq!(applied.name, format!("process {orders_topic}"));
        assert!(applied.attribute("messaging.consumer.group.name").is_some());
        assert!(
            descends_from(&spans, applied, sent_placed),
            "{consumer}: in the order's trace, after the send"
        );
    }
    let validated = find(&spans, "the validator's decision (order)", |span| span.name == "validate order");
    assert_eq!(validated.attribute("order.status"), Some("confirmed"));
    assert!(descends_from(&spans, validated, served), "the decision continues the placement's trace");
    let sent_confirmed = find(&spans, "the relay's send of the confirmation", |span| {
        span.service == "relay" && descends_from(&spans, span, validated)
    });
    assert_eq!(sent_confirmed.kind, SpanKind::Producer);
    assert!(
        spans.iter().any(|span| span.service == "shop" && span.links_to(sent_confirmed)),
        "the example consumer applied the confirmation, in the same trace"
    );

    // The order service's projection applied the account's record: its consumer span links to the send (in the
    // account's trace when the account's record was applied alone, in a trace of its own when batched with others).
    let spans =
        spans_once(&receiver, &account_trace, |spans| spans.iter().any(|span| span.service == "relay")).await;
    let sent = find(&spans, "the relay's send of the account", |span| span.service == "relay");
    let projected = eventually_found(&receiver, "the order projection's apply of the account", |span| {
        span.service == "order" && span.kind == SpanKind::Consumer && span.links_to(sent)
    })
    .await;
    assert_eq!(projected.attribute("messaging.consumer.group.name"), Some("order.directory"));

    // Logs and traces join: the order service's JSON log lines in the trace carry its ids.
    let order_process = processes.iter().find(|process| process.name == "order").unwrap();
    let log = order_process.log();
    let joined = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["trace_id"] == order_trace.as_str())
        .unwrap_or_else(|| panic!("no log line of the order's trace in\n{log}"));
    assert!(
        receiver.trace(&order_trace).iter().any(|span| joined["span_id"] == span.span_id.as_str()),
        "the line's span is one of the trace's: {joined}"
    );

    // Every process serves its own metrics, and they moved with the order.
    let scrape = |name: &'static str| scrape(metrics_addresses[name]);
    let gateway_metrics = scrape("gateway").await;
    let mutation = |field| [("operation_type", "mutation"), ("root_field", field), ("outcome", "ok")];
    assert_eq!(gateway_metrics.sum("shop_graphql_requests_total", &mutation("createOrder")), 1.0);
    assert_eq!(gateway_metrics.sum("shop_graphql_requests_total", &mutation("createAccount")), 1.0);
    for (service, grpc_service, method) in [
        ("account", "shop.account.v1.AccountService", "PostAccount"),
        ("catalog", "shop.catalog.v1.CatalogService", "PostProduct"),
        ("order", "shop.order.v1.OrderService", "PostOrder"),
    ] {
        let metrics = scrape(service).await;
        let call = [("grpc_service", grpc_service), ("grpc_method", method), ("grpc_code", "OK")];
        assert_eq!(metrics.sum("shop_grpc_server_handled_total", &call), 1.0, "{service}");
        assert!(metrics.has("shop_db_pool_connections", &[("pool", service)]), "{service}");
    }
    let order_metrics = scrape("order").await;
    assert_eq!(order_metrics.sum("shop_orders_placed_total", &[]), 1.0);
    assert_eq!(order_metrics.sum("shop_orders_settled_total", &[("status", "confirmed")]), 1.0);
    assert_eq!(order_metrics.sum("shop_order_confirmation_seconds_count", &[]), 1.0);
    assert!(order_metrics.has("shop_order_validator_oldest_pending_age_seconds", &[]));
    let relay_metrics = scrape("relay").await;
    assert!(
        relay_metrics.sum("shop_relay_published_events_total", &[]) >= 4.0,
        "account, product, placed, confirmed"
    );
    for (service, consumer) in [("order", "order.directory"), ("catalog", "catalog.stock-reservations")] {
        eventually(Duration::from_secs(30), &format!("{consumer} to have no lag"), || async {
            let metrics = scrape(service).await;
            metrics.has("shop_consumer_lag_records", &[("consumer", consumer)])
                && metrics.sum("shop_consumer_lag_records", &[("consumer", consumer)]) == 0.0
                && metrics.sum("shop_consumer_records_total", &[("consumer", consumer)]) >= 2.0
        })
        .await;
    }
    // Every metric the Grafana dashboard queries is served by one of them.
    let mut served = BTreeSet::new();
    for name in metrics_addresses.keys() {
        served.extend(scrape(name).await.0.samples.into_iter().map(|sample| sample.metric));
    }
    for name in crate::dashboard::DASHBOARD_METRICS {
        let histogram = format!("{name}_count");
        assert!(served.contains(*name) || served.contains(&histogram), "no process serves {name}");
    }

    for process in processes {
        process.stop();
    }
}

/// One scrape of `/metrics` at `address`, parsed as Prometheus parses the text format.
async fn scrape(address: SocketAddr) -> Scrape {
    let body =
        reqwest::get(format!("http://{address}/metrics")).await.expect("a scrape").text().await.unwrap();
    Scrape(
        prometheus_parse::Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
            .expect("the text format"),
    )
}

struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    /// The sum of the samples of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value) => value,
                _ => 0.0,
            })
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
        self.0.samples.iter().filter(move |sample| {
            sample.metric == name
                && labels.iter().all(|(label, value)| sample.labels.get(label) == Some(*value))
        })
    }
}
