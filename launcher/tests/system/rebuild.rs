use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use shop_platform::kafka::KafkaSettings;
use sqlx::PgPool;
use uuid::Uuid;

use shop_testkit::eventually;

use crate::helpers::start_shop;

type AccountRow = (Uuid, String, i64);
type ProductRow = (Uuid, String, String, i64, i64);

async fn accounts(pool: &PgPool, table: &str) -> Vec<AccountRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, name, version FROM {table} ORDER BY id")))
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn products(pool: &PgPool, table: &str) -> Vec<ProductRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, name, description, price_cents, version FROM {table} ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_writes_continue_equals_the_source_row_by_row() {
    // Arrange: a shop with some history, and a writer that keeps creating and changing things.
    let shop = start_shop().await;
    for i in 0..10 {
        shop.client.create_account(&format!("customer {i}")).await;
        shop.client.create_product(&format!("product {i}"), "", 1.0 + f64::from(i)).await;
    }
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (http, url, writing) =
            (shop.http.clone(), format!("http://{}/graphql", shop.shop.gateway_addr), writing.clone());
        async move {
            let post = |query: &'static str, variables: serde_json::Value| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let response: serde_json::Value = http
                        .post(url)
                        .json(&json!({ "query": query, "variables": variables }))
                        .send()
                        .await?
                        .json()
                        .await?;
                    anyhow::ensure!(response.get("errors").is_none(), "{response}");
                    Ok(response["data"].clone())
                }
            };
            let mut written = 0;
            while writing.load(Ordering::Relaxed) {
                post(
                    "mutation($n: String!) { createAccount(account: {name: $n}) { id } }",
                    json!({ "n": format!("late {written}") }),
                )
                .await?;
                let product = post(
                    "mutation($n: String!) { createProduct(product: {name: $n, price: 1.5}) { id } }",
                    json!({ "n": format!("late product {written}") }),
                )
                .await?;
                post(
                    "mutation($id: String!) { updateProduct(id: $id, product: {name: \"renamed\", price: 2.5}) { id } }",
                    json!({ "id": product["createProduct"]["id"] }),
                )
                .await?;
                written += 1;
            }
            anyhow::Ok(written)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Act
    let order_settings = shop_order::config::Settings {
        database_url: shop.settings.database_url("order"),
        kafka: KafkaSettings {
            kafka_topic_prefix: shop.settings.kafka_topic_prefix.clone(),
            ..KafkaSettings::new(shop.shop.kafka_brokers.clone())
        },
        ..Default::default()
    };
    let report =
        shop_order::projection::rebuild(&order_settings, &Default::default()).await.expect("the rebuild");
    tokio::time::sleep(Duration::from_millis(500)).await;
    writing.store(false, Ordering::Relaxed);
    let written_during = writer.await.unwrap().expect("the writer");

    // Assert: once the live consumer has caught up, the rebuilt projection equals the services' own tables.
    let (source_accounts, source_products) =
        (shop.database("account").pool.clone(), shop.database("catalog").pool.clone());
    let projection = shop.database("order").pool.clone();
    let expected =
        (accounts(&source_accounts, "accounts").await, products(&source_products, "products").await);
    let actual = || async {
        (accounts(&projection, "account_projection").await, products(&projection, "product_projection").await)
    };
    eventually(Duration::from_secs(20), "the projection to match the services' tables", || async {
        actual().await == expected
    })
    .await;
    let actual = actual().await;
    println!(
        "Rebuilt from {} events ({} applied, {} caught up before the swap) while {written_during} rounds of writes went on",
        report.consumed, report.applied, report.caught_up
    );
    assert!(written_during > 0, "writes should have gone on during the rebuild");
    assert_eq!(actual.0, expected.0, "accounts");
    assert_eq!(actual.1, expected.1, "products");
    shop.stop().await;
}
