//! `shop load` as a user runs it: the real binary pointed at a running shop that requires tokens from its
//! development issuer, minting a token per customer it signs up, and reporting every operation of its mix.

use serde_json::Value;
use shop::dev_auth::LocalAuth;
use uuid::Uuid;

use crate::helpers::start_shop_with;

/// Every operation `shop load` knows.
const OPERATIONS: [&str; 7] =
    ["sign-up", "browse", "search", "create-order", "order-by-id", "account-orders", "follow-order"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_load_drives_a_shop_with_the_development_issuer_through_every_operation_without_an_error() {
    // Arrange: a shop with its development issuer, on port 0 (`shop load` finds its key by the port).
    let shop = start_shop_with(|settings| settings.auth = LocalAuth::Dev).await;
    let endpoint = format!("http://{}/graphql", shop.shop.gateway_addr);
    let json_path = std::env::temp_dir().join(format!("shop-load-{}.json", Uuid::now_v7()));
    // Equal weights, so that a slow machine still sends each operation many times in three seconds.
    let mix = OPERATIONS.map(|operation| format!("{operation}=1")).join(",");

    // Act
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["load", "--url", &endpoint, "--auth", "dev", "--concurrency", "4", "--duration-secs", "3"])
        .args(["--mix", &mix, "--seed-accounts", "5", "--seed-products", "10", "--json"])
        .arg(&json_path)
        .env_remove("SHOP_AUTH")
        .output()
        .await
        .expect("Failed to run shop load");

    // Assert
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "shop load failed:\n{stderr}");
    assert!(stderr.contains("[    1 s]"), "a progress line every second on stderr:\n{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    std::fs::remove_file(&json_path).unwrap();
    assert_eq!(report["endpoint"], endpoint.as_str());
    assert_eq!(report["target"]["concurrency"], 4);
    let operations = report["operations"].as_array().unwrap();
    let names: Vec<&str> =
        operations.iter().map(|operation| operation["operation"].as_str().unwrap()).collect();
    assert_eq!(names, OPERATIONS, "one entry per operation of the mix, in order");
    for operation in operations.iter().chain([&report["total"]]) {
        let name = operation["operation"].as_str().unwrap();
        let count = operation["count"].as_u64().unwrap();
        assert!(count > 0, "{name} never ran: {report:#}");
        assert_eq!(operation["errors"], 0, "{name} failed: {report:#}");
        assert_eq!(operation["errors_by_code"], serde_json::json!({}), "{name}");
        assert!(operation["rate_per_second"].as_f64().unwrap() > 0.0, "{name}");
        let latency = |field: &str| operation["latency_ms"][field].as_f64().unwrap();
        let (p50, p95, p99, max) = (latency("p50"), latency("p95"), latency("p99"), latency("max"));
        assert!(0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max, "{name}: {operation:#}");
        let row = stdout.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_else(|| {
            panic!("no row for {name} in the text report:\n{stdout}");
        });
        assert!(row.contains(&format!(" {count} ")), "{row}");
    }
    let total: u64 = operations.iter().map(|operation| operation["count"].as_u64().unwrap()).sum();
    assert_eq!(report["total"]["count"].as_u64().unwrap(), total);

    // What it did is in the shop: every order it placed (the seed's one per customer, and every create-order), on
    // accounts each owned by a subject of its own (the seed's customers, and every sign-up).
    let count = |database: &str, query: &'static str| {
        let pool = shop.database(database).pool.clone();
        async move { sqlx::query_scalar::<_, i64>(query).fetch_one(&pool).await.unwrap() }
    };
    let ran = |name: &str| {
        report["operations"][OPERATIONS.iter().position(|o| *o == name).unwrap()]["count"].as_i64().unwrap()
    };
    assert_eq!(count("order", "SELECT count(*) FROM orders").await, 5 + ran("create-order"));
    let owners =
        count("account", "SELECT count(DISTINCT owner) FROM accounts WHERE owner LIKE 'load-%'").await;
    assert_eq!(owners, 5 + ran("sign-up"));
    shop.stop().await;
}
