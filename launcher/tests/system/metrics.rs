//! The shop's metrics as Prometheus reads them: `/metrics` scraped over HTTP from the one-command run (every part's
//! families in the process's one registry) and parsed with a Prometheus text-format parser, before and after
//! orders flow through GraphQL and REST.
//!
//! The counters are the process's, and the other system tests run shops in this process at the same time: the
//! checks are on what grew, never on exact values, and the consumer's labels name this test's own group.

use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sampled};
use serde_json::json;
use shop_testkit::eventually;

use crate::helpers::{TestShop, start_shop_with_own_names};

/// The families a dashboard reads, each of which must be served.
const FAMILIES: [&str; 22] = [
    "shop_grpc_server_handled_total",
    "shop_grpc_server_handling_seconds_count",
    "shop_graphql_requests_total",
    "shop_graphql_request_duration_seconds_count",
    "shop_http_requests_total",
    "shop_http_request_duration_seconds_count",
    "shop_db_pool_connections",
    "shop_db_pool_max_connections",
    "shop_consumer_records_total",
    "shop_consumer_lag_records",
    "shop_orders_placed_total",
    "shop_orders_settled_total",
    "shop_order_confirmation_seconds_count",
    "shop_order_validator_pending_orders",
    "shop_order_validator_oldest_pending_age_seconds",
    "shop_order_stock_releases_owed",
    "shop_relay_backlog_events",
    "shop_relay_oldest_unpublished_age_seconds",
    "shop_relay_published_events_total",
    "shop_relay_batches_total",
    "shop_relay_publish_latency_seconds_count",
    "shop_relay_owned_shards",
];

/// One scrape of `/metrics`, parsed.
struct Metrics(Scrape);

impl Metrics {
    async fn scrape(shop: &TestShop) -> Self {
        let url = format!("http://{}/metrics", shop.shop.relay_metrics_addr);
        let response = shop.http.get(&url).send().await.expect("a scrape");
        assert!(response.status().is_success(), "{url} answered {}", response.status());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        let body = response.text().await.unwrap();
        Self(Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("the Prometheus text format"))
    }

    /// The series of `name` whose labels include `labels`, with their values.
    fn series<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = f64> + 'a {
        self.0
            .samples
            .iter()
            .filter(move |sample| sample.metric == name)
            .filter(|sample| labels.iter().all(|(label, value)| sample.labels.get(label) == Some(*value)))
            .filter_map(|sample| match sample.value {
                Sampled::Counter(value) | Sampled::Gauge(value) | Sampled::Untyped(value) => Some(value),
                _ => None,
            })
    }

    /// The sum of the series of `name` with `labels` (0 when there is none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.series(name, labels).next().is_some()
    }
}

/// What the test's two orders move at least: both are placed, confirmed and posted to the order service; one
/// comes through GraphQL's `createOrder`, the other through REST's `POST /api/v1/order`.
const GROWTH: Moved = Moved {
    placed: 2.0,
    confirmed: 2.0,
    confirmations_timed: 2.0,
    grpc_post_order: 2.0,
    grpc_post_order_timed: 2.0,
    graphql_create_order: 1.0,
    graphql_create_order_timed: 1.0,
    rest_post_order: 1.0,
    rest_post_order_timed: 1.0,
};

/// What the flow must move, read from one scrape.
#[derive(Debug, Clone, Copy)]
struct Moved {
    placed: f64,
    confirmed: f64,
    confirmations_timed: f64,
    grpc_post_order: f64,
    grpc_post_order_timed: f64,
    graphql_create_order: f64,
    graphql_create_order_timed: f64,
    rest_post_order: f64,
    rest_post_order_timed: f64,
}

impl Moved {
    fn read(metrics: &Metrics) -> Self {
        let post_order = [("grpc_service", "shop.order.v1.OrderService"), ("grpc_method", "PostOrder")];
        let create_order = [("operation_type", "mutation"), ("root_field", "createOrder")];
        let rest_order = [("method", "POST"), ("route", "/api/v1/order")];
        Self {
            placed: metrics.sum("shop_orders_placed_total", &[]),
            confirmed: metrics.sum("shop_orders_settled_total", &[("status", "confirmed")]),
            confirmations_timed: metrics.sum("shop_order_confirmation_seconds_count", &[]),
            grpc_post_order: metrics
                .sum("shop_grpc_server_handled_total", &[post_order[0], post_order[1], ("grpc_code", "OK")]),
            grpc_post_order_timed: metrics.sum("shop_grpc_server_handling_seconds_count", &post_order),
            graphql_create_order: metrics
                .sum("shop_graphql_requests_total", &[create_order[0], create_order[1], ("outcome", "ok")]),
            graphql_create_order_timed: metrics
                .sum("shop_graphql_request_duration_seconds_count", &create_order),
            rest_post_order: metrics.sum("shop_http_requests_total", &rest_order),
            rest_post_order_timed: metrics.sum("shop_http_request_duration_seconds_count", &rest_order),
        }
    }

    /// Whether every count grew since `before` by at least as much as `growth` says.
    fn grew(&self, before: &Self, growth: &Self) -> bool {
        let (now, then, by) = (self.as_array(), before.as_array(), growth.as_array());
        (0..now.len()).all(|i| now[i] >= then[i] + by[i])
    }

    fn as_array(&self) -> [f64; 9] {
        [
            self.placed,
            self.confirmed,
            self.confirmations_timed,
            self.grpc_post_order,
            self.grpc_post_order_timed,
            self.graphql_create_order,
            self.graphql_create_order_timed,
            self.rest_post_order,
            self.rest_post_order_timed,
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_served_in_the_prometheus_format_and_moves_as_orders_flow() {
    // Arrange: a shop whose consumer groups are this test's alone.
    let shop = start_shop_with_own_names().await;
    let directory = format!("{}order.directory", shop.settings.kafka_topic_prefix);
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let before = Moved::read(&Metrics::scrape(&shop).await);

    // Act: one order through GraphQL, one through REST, each seen to its confirmation.
    let by_graphql = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    let by_rest = shop
        .http
        .post(format!("http://{}/api/v1/order", shop.shop.gateway_addr))
        .json(&json!({ "account_id": ada, "lines": [{ "product_id": kettle, "quantity": 2 }] }))
        .send()
        .await
        .unwrap();
    assert!(by_rest.status().is_success(), "{}", by_rest.status());
    let by_rest: serde_json::Value = by_rest.json().await.unwrap();
    for id in [&by_graphql["id"], &by_rest["id"]] {
        assert_eq!(shop.settled_order(id.as_str().unwrap()).await["status"], "CONFIRMED");
    }

    // Assert: every family is there, the flow's counts grew, and the order projection caught up to lag 0.
    let lag_of_directory = [("consumer", directory.as_str())];
    eventually(Duration::from_secs(30), "the order flow to show in the metrics", || async {
        let metrics = Metrics::scrape(&shop).await;
        Moved::read(&metrics).grew(&before, &GROWTH)
            && metrics.has("shop_consumer_lag_records", &lag_of_directory)
            && metrics.sum("shop_consumer_lag_records", &lag_of_directory) == 0.0
    })
    .await;
    let metrics = Metrics::scrape(&shop).await;
    for family in FAMILIES {
        assert!(metrics.has(family, &[]), "{family} is not served");
    }
    assert!(
        metrics.sum("shop_consumer_records_total", &[("consumer", &directory), ("outcome", "applied")])
            >= 2.0
    );
    for pool in ["account", "catalog", "order", "relay"] {
        let in_use =
            metrics.series("shop_db_pool_connections", &[("pool", pool), ("state", "in_use")]).count();
        assert_eq!(in_use, 1, "one in_use series for pool {pool}");
        assert!(metrics.sum("shop_db_pool_max_connections", &[("pool", pool)]) >= 1.0, "pool {pool}");
    }
    let oldest_age =
        metrics.series("shop_order_validator_oldest_pending_age_seconds", &[]).collect::<Vec<_>>();
    assert!(matches!(oldest_age[..], [age] if age >= 0.0), "{oldest_age:?}");
    shop.stop().await;
}
