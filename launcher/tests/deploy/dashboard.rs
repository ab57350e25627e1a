//! The Grafana dashboard docker-compose provisions (deploy/grafana/dashboards/shop-order-flow.json) and the
//! metric names its queries use. Shared: `tests/deploy.rs` checks the dashboard against this list, and a test that
//! scrapes the running shop can include this file (`#[path = "../deploy/dashboard.rs"] mod dashboard;`) to check
//! that every name the dashboard asks for is served.
#![allow(dead_code)] // Each including test uses its own part.

use std::collections::BTreeSet;

use serde_json::Value;

pub(crate) const DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/shop-order-flow.json");

/// Every metric the dashboard queries, as a scrape shows its samples: counters with `_total`, histograms by
/// their base name (a scrape has `_bucket`, `_sum` and `_count` samples of it; [`metric_names`] strips those).
pub(crate) const DASHBOARD_METRICS: &[&str] = &[
    "shop_orders_placed_total",
    "shop_orders_settled_total",
    "shop_order_confirmation_seconds",
    "shop_relay_backlog_events",
    "shop_relay_oldest_unpublished_age_seconds",
    "shop_consumer_lag_records",
    "shop_order_validator_pending_orders",
    "shop_order_validator_oldest_pending_age_seconds",
    "shop_graphql_requests_total",
    "shop_grpc_server_handled_total",
    "shop_grpc_server_handling_seconds",
    "shop_http_requests_total",
    "shop_db_pool_connections",
];

pub(crate) fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("shop-order-flow.json is JSON")
}

/// The PromQL of every target of every panel.
pub(crate) fn dashboard_exprs() -> Vec<String> {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect()
}

/// The metric names a PromQL expression uses: every `shop_[a-z_]+` that does not continue a longer word, with a
/// histogram's `_bucket`, `_sum` or `_count` suffix removed.
pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (start, _) in expr.match_indices("shop_") {
        if expr[..start].chars().next_back().is_some_and(is_word) {
            continue;
        }
        let rest = &expr[start..];
        let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..end];
        let name =
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        names.insert(name.to_owned());
    }
    names
}

/// Every metric name the dashboard's queries use.
pub(crate) fn dashboard_metric_names() -> BTreeSet<String> {
    dashboard_exprs().iter().flat_map(|expr| metric_names(expr)).collect()
}
