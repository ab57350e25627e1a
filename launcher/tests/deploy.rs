//! docker-compose.yaml and the files under deploy/ agree, without starting a container.
//!
//! - The gateway and the Keycloak realm it imports: the issuer the gateway requires is the one Keycloak puts in its
//!   tokens, the audience is the one its mapper adds, the staff role exists and the demo staff user has it, and the
//!   gateway requires authentication.
//! - Observability: every shop service exports traces to Jaeger under its own name and serves metrics where
//!   Prometheus scrapes them; Grafana provisions the data sources and the dashboard the compose file mounts, and
//!   the dashboard queries only the metrics in [`dashboard::DASHBOARD_METRICS`].
//! - `docker compose config` accepts the file, where a compose tool is installed.

#[path = "deploy/dashboard.rs"]
mod dashboard;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use dashboard::{DASHBOARD_METRICS, dashboard, dashboard_metric_names, metric_names};

const COMPOSE: &str = include_str!("../../docker-compose.yaml");
const REALM: &str = include_str!("../../deploy/keycloak/shop-realm.json");
const PROMETHEUS: &str = include_str!("../../deploy/prometheus/prometheus.yml");
const GRAFANA_DATASOURCES: &str =
    include_str!("../../deploy/grafana/provisioning/datasources/datasources.yaml");
const GRAFANA_DASHBOARDS: &str = include_str!("../../deploy/grafana/provisioning/dashboards/dashboards.yaml");

/// The services built from the shop's image, each with the name it should report itself under.
const SHOP_SERVICES: [&str; 5] = ["account", "catalog", "order", "relay", "gateway"];

/// The value of `name` in the compose file's environment blocks (`NAME: value`), for a name only one service sets.
/// Names every shop service sets with its own value go through [`service_env`].
fn env(name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let mut values = COMPOSE.lines().filter_map(|line| line.trim().strip_prefix(&prefix));
    let value = values.next().map(|value| value.trim().trim_matches('"').to_owned());
    assert!(values.next().is_none(), "{name} is set twice in docker-compose.yaml");
    value
}

fn realm() -> Value {
    serde_json::from_str(REALM).expect("deploy/keycloak/shop-realm.json is JSON")
}

#[test]
fn the_gateway_in_docker_compose_requires_the_tokens_keycloak_issues() {
    let realm = realm();
    let name = realm["realm"].as_str().unwrap();
    let hostname = env("KC_HOSTNAME").expect("KC_HOSTNAME fixes the issuer");

    assert_eq!(env("AUTH_MODE"), None, "the deployed gateway requires authentication");
    assert_eq!(env("AUTH_ISSUER").unwrap(), format!("{hostname}/realms/{name}"));
    assert_eq!(
        env("AUTH_JWKS_URL").unwrap(),
        format!("http://keycloak:8080/realms/{name}/protocol/openid-connect/certs")
    );
    assert_eq!(env("AUTH_STAFF_CLAIM").unwrap(), "realm_access.roles", "where Keycloak puts realm roles");
}

#[test]
fn the_realm_gives_access_tokens_the_gateways_audience_and_has_its_staff_role_and_demo_users() {
    let realm = realm();
    let audience = env("AUTH_AUDIENCE").unwrap();
    let staff_role = env("AUTH_STAFF_ROLE").unwrap();

    let client =
        realm["clients"].as_array().unwrap().iter().find(|c| c["clientId"] == "shop").expect("client shop");
    assert_eq!(client["publicClient"], true);
    assert_eq!(client["directAccessGrantsEnabled"], true, "curl's password grant, as the README shows");
    let mappers = client["protocolMappers"].as_array().unwrap();
    let audience_mapper =
        mappers.iter().find(|m| m["protocolMapper"] == "oidc-audience-mapper").expect("a mapper");
    assert_eq!(audience_mapper["config"]["included.client.audience"], audience.as_str());
    assert_eq!(audience_mapper["config"]["access.token.claim"], "true");

    let roles = realm["roles"]["realm"].as_array().unwrap();
    assert!(roles.iter().any(|role| role["name"] == staff_role.as_str()), "realm role {staff_role}");
    let users = realm["users"].as_array().unwrap();
    let user = |name: &str| users.iter().find(|user| user["username"] == name).expect(name).clone();
    let roles_of = |user: &Value| user["realmRoles"].as_array().cloned().unwrap_or_default();
    assert!(roles_of(&user("staff")).contains(&Value::from(staff_role.as_str())));
    assert!(roles_of(&user("alice")).is_empty(), "alice is a customer");
    for user in users {
        // A fixed id is a fixed `sub`: the shop binds accounts to it, and a new container re-imports the realm.
        assert!(user["id"].as_str().is_some_and(|id| id.len() == 36), "{user}");
        assert_eq!(
            user["credentials"][0]["temporary"], false,
            "the password grant needs no first-login step"
        );
    }
}

/// The lines of each service under the compose file's `services:`, by name.
fn services() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut services = BTreeMap::new();
    let mut current: Option<&str> = None;
    let mut in_services = false;
    for line in COMPOSE.lines() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            in_services = line == "services:";
            current = None;
            continue;
        }
        if !in_services {
            continue;
        }
        let key = line.strip_prefix("  ").filter(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()));
        if let Some(name) = key.and_then(|rest| rest.strip_suffix(':')) {
            current = Some(name);
            services.insert(name, Vec::new());
        } else if let Some(name) = current {
            services.get_mut(name).unwrap().push(line);
        }
    }
    services
}

fn service(name: &str) -> Vec<&'static str> {
    services().remove(name).unwrap_or_else(|| panic!("docker-compose.yaml has no service {name}"))
}

/// The value of `name` in one service's own environment block (not the shared `x-shop` one), once at most.
fn service_env(service_name: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let lines = service(service_name);
    let mut values = lines.iter().filter_map(|line| line.trim().strip_prefix(&prefix));
    let value = values.next().map(|value| value.trim().trim_matches('"').to_owned());
    assert!(values.next().is_none(), "{name} is set twice in the {service_name} service");
    value
}

/// The value of a service's top-level key, such as `image`.
fn service_key(service_name: &str, key: &str) -> Option<String> {
    let prefix = format!("    {key}:");
    service(service_name)
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_owned())
}

/// A service's volume mounts, as `(host path, container path)`.
fn mounts(service_name: &str) -> Vec<(String, String)> {
    service(service_name)
        .iter()
        .filter_map(|line| line.trim().strip_prefix("- ./"))
        .map(|mount| {
            let mut parts = mount.split(':');
            (format!("./{}", parts.next().unwrap()), parts.next().expect("host:container").to_owned())
        })
        .collect()
}

/// Where `service_name` mounts the host path `host`.
fn mount_target(service_name: &str, host: &str) -> String {
    mounts(service_name)
        .into_iter()
        .find_map(|(from, to)| (from == host).then_some(to))
        .unwrap_or_else(|| panic!("{service_name} mounts {host}"))
}

/// The items of a top-level YAML list (`  - key: value` and the `    key: value` lines under it), as written in the
/// files under deploy/: the scalar keys of each item, nested blocks ignored.
fn yaml_list_items(yaml: &str, list: &str) -> Vec<BTreeMap<String, String>> {
    let mut items = Vec::new();
    let mut in_list = false;
    for line in yaml.lines() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            in_list = line == format!("{list}:");
            continue;
        }
        if !in_list {
            continue;
        }
        let entry = if let Some(first) = line.strip_prefix("  - ") {
            items.push(BTreeMap::new());
            first
        } else if let Some(key) = line.strip_prefix("    ").filter(|rest| !rest.starts_with([' ', '#'])) {
            key
        } else {
            continue;
        };
        if let (Some(item), Some((key, value))) = (items.last_mut(), entry.split_once(':')) {
            item.insert(key.trim().to_owned(), value.trim().trim_matches('"').to_owned());
        }
    }
    items
}

/// Prometheus's scrape targets by job, from `static_configs` lines `- targets: ["host:port", …]`.
fn scrape_targets() -> BTreeMap<String, Vec<String>> {
    let mut jobs = BTreeMap::<String, Vec<String>>::new();
    let mut job = None;
    for line in PROMETHEUS.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- job_name:") {
            job = Some(name.trim().to_owned());
            jobs.insert(name.trim().to_owned(), Vec::new());
        } else if let Some(targets) = line.strip_prefix("- targets:") {
            let job = job.clone().expect("targets belong to a job");
            let targets = targets.trim().trim_start_matches('[').trim_end_matches(']');
            let targets = targets.split(',').map(|target| target.trim().trim_matches('"').to_owned());
            jobs.get_mut(&job).unwrap().extend(targets);
        }
    }
    jobs
}

#[test]
fn the_shop_services_in_docker_compose_are_the_five_parts() {
    let built_from_the_shop_image: BTreeSet<_> = services()
        .into_iter()
        .filter(|(_, lines)| lines.iter().any(|line| line.trim() == "<<: *shop"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(built_from_the_shop_image, SHOP_SERVICES.into_iter().collect());
}

#[test]
fn every_shop_service_exports_its_traces_to_jaeger_under_its_own_name() {
    let image = service_key("jaeger", "image").expect("a jaeger service");
    assert!(image.starts_with("jaegertracing/jaeger:2."), "Jaeger v2, with OTLP on 4317: {image}");
    for name in SHOP_SERVICES {
        assert_eq!(service_env(name, "OTEL_SERVICE_NAME").as_deref(), Some(name));
        assert_eq!(
            service_env(name, "OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("http://jaeger:4317"),
            "{name}: OTLP/gRPC to Jaeger inside the network"
        );
    }
}

#[test]
fn the_observability_images_are_pinned() {
    for name in ["jaeger", "prometheus", "grafana"] {
        let image = service_key(name, "image").unwrap_or_else(|| panic!("a {name} service"));
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or_default();
        assert!(tag.starts_with(|c: char| c.is_ascii_digit() || c == 'v'), "{name}: a version tag: {image}");
    }
}

#[test]
fn prometheus_scrapes_every_shop_service_where_docker_compose_serves_its_metrics() {
    let jobs = scrape_targets();
    for name in SHOP_SERVICES {
        let variable = if name == "relay" { "RELAY_METRICS_ADDR" } else { "METRICS_ADDR" };
        assert_eq!(service_env(name, variable).as_deref(), Some("0.0.0.0:9464"), "{name} {variable}");
        // One job per service: `job` tells the services apart on every series.
        assert_eq!(jobs.get(name), Some(&vec![format!("{name}:9464")]), "the {name} job");
    }
    let scrape_interval = PROMETHEUS.lines().find_map(|line| line.trim().strip_prefix("scrape_interval:"));
    assert_eq!(scrape_interval.map(str::trim), Some("5s"));
    assert_eq!(
        mount_target("prometheus", "./deploy/prometheus/prometheus.yml"),
        "/etc/prometheus/prometheus.yml",
        "the image's default config path"
    );
}

#[test]
fn grafana_provisions_prometheus_jaeger_and_the_dashboards_docker_compose_mounts() {
    let datasources = yaml_list_items(GRAFANA_DATASOURCES, "datasources");
    let by_type = |kind: &str| {
        datasources
            .iter()
            .find(|ds| ds["type"] == kind)
            .unwrap_or_else(|| panic!("a {kind} data source"))
            .clone()
    };
    assert_eq!(by_type("prometheus")["url"], "http://prometheus:9090");
    assert_eq!(by_type("jaeger")["url"], "http://jaeger:16686");
    let uids: BTreeSet<_> = datasources.iter().map(|ds| ds.get("uid").expect("a fixed uid")).collect();
    assert_eq!(uids.len(), datasources.len(), "uids are unique");

    assert_eq!(
        mount_target("grafana", "./deploy/grafana/provisioning/datasources"),
        "/etc/grafana/provisioning/datasources"
    );
    assert_eq!(
        mount_target("grafana", "./deploy/grafana/provisioning/dashboards"),
        "/etc/grafana/provisioning/dashboards"
    );
    let providers = yaml_list_items(GRAFANA_DASHBOARDS, "providers");
    let path = GRAFANA_DASHBOARDS.lines().find_map(|line| line.trim().strip_prefix("path:")).map(str::trim);
    assert_eq!(providers.len(), 1);
    assert_eq!(path, Some(mount_target("grafana", "./deploy/grafana/dashboards").as_str()));
    assert_eq!(
        service_env("grafana", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"),
        Some(format!("{}/shop-order-flow.json", path.unwrap())),
        "the home page is the order flow"
    );
    assert_eq!(service_env("grafana", "GF_AUTH_ANONYMOUS_ORG_ROLE").as_deref(), Some("Viewer"));
}

#[test]
fn every_dashboard_panel_queries_a_provisioned_prometheus_with_a_unit() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "shop-order-flow");
    assert_eq!(dashboard["title"], "Shop — order flow");
    let datasources = yaml_list_items(GRAFANA_DATASOURCES, "datasources");
    let prometheus_uids: BTreeSet<_> =
        datasources.iter().filter(|ds| ds["type"] == "prometheus").map(|ds| ds["uid"].as_str()).collect();

    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        let uid = panel["datasource"]["uid"].as_str().unwrap_or_else(|| panic!("{title}: a data source uid"));
        assert!(prometheus_uids.contains(uid), "{title}: {uid} is a provisioned Prometheus data source");
        let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
        assert!(!unit.is_empty(), "{title}: a unit");

        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: at least one query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!metric_names(expr).is_empty(), "{title}: {target} queries a shop metric");
            if let Some(target_uid) = target["datasource"]["uid"].as_str() {
                assert_eq!(target_uid, uid, "{title}: one data source per panel");
            }
        }
    }
    let ids: BTreeSet<_> = panels.iter().map(|panel| panel["id"].as_u64().expect("an id")).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

#[test]
fn the_dashboard_queries_exactly_the_listed_metrics() {
    let used = dashboard_metric_names();
    let listed: BTreeSet<_> = DASHBOARD_METRICS.iter().map(|name| name.to_string()).collect();
    assert_eq!(listed.len(), DASHBOARD_METRICS.len(), "DASHBOARD_METRICS has no duplicate");
    let unlisted: Vec<_> = used.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "the dashboard queries metrics missing from DASHBOARD_METRICS: {unlisted:?}"
    );
    let unused: Vec<_> = listed.difference(&used).collect();
    assert!(unused.is_empty(), "DASHBOARD_METRICS lists metrics no panel queries: {unused:?}");
}

#[test]
fn metric_names_strips_histogram_suffixes_and_skips_labels_and_functions() {
    let names = |expr| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            "histogram_quantile(0.99, sum by (le, grpc_method) (rate(shop_grpc_server_handling_seconds_bucket[5m])))"
        ),
        ["shop_grpc_server_handling_seconds"]
    );
    assert_eq!(
        names(r#"sum by (root_field) (rate(shop_graphql_requests_total{outcome="error"}[1m]))"#),
        ["shop_graphql_requests_total"]
    );
    assert_eq!(
        names("shop_a_seconds_sum / shop_a_seconds_count + not_shop_b + shop_c"),
        ["shop_a_seconds", "shop_c"]
    );
}

/// How to run compose here: `docker compose` (the v2 plugin) or `docker-compose`, whichever answers `version`.
fn compose_tool() -> Option<(&'static str, &'static [&'static str])> {
    let candidates: [(&str, &[&str]); 2] = [("docker", &["compose"]), ("docker-compose", &[])];
    candidates.into_iter().find(|(program, args)| {
        Command::new(program).args(*args).arg("version").output().is_ok_and(|output| output.status.success())
    })
}

#[test]
fn compose_config_is_valid_when_docker_compose_is_installed() {
    let Some((program, args)) = compose_tool() else {
        eprintln!(
            "docker-compose.yaml NOT validated: neither `docker compose` nor `docker-compose` is installed \
             (the other tests here check it line by line)"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let version = Command::new(program).args(args).arg("version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or_default().to_owned();
    let output = Command::new(program)
        .args(args)
        .args(["-f", "docker-compose.yaml", "config", "-q"])
        .current_dir(root)
        .output()
        .unwrap();
    let command = [program].into_iter().chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    assert!(
        output.status.success(),
        "`{command} config -q` rejects docker-compose.yaml:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("docker-compose.yaml validated by `{command} -f docker-compose.yaml config -q` ({version})");
}
