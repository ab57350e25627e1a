use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::json;
use shop_events::topics;
use shop_outbox::republish::RepublishSettings;
use shop_platform::kafka::KafkaSettings;
use shop_projection::{IncompleteHistory, RebuildSettings};
use sqlx::PgPool;
use uuid::Uuid;

use shop_testkit::{eventually, kafka::ReadRecord};

use crate::helpers::{TestShop, start_shop};

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

/// An account as the order service's projection holds it, every column.
type ProjectedAccount = (Uuid, String, i64, DateTime<Utc>, Option<String>);
/// A product as the order service's projection holds it, every column.
type ProjectedProduct = (Uuid, String, String, i64, i64, DateTime<Utc>);

async fn projection(pool: &PgPool) -> (Vec<ProjectedAccount>, Vec<ProjectedProduct>) {
    let accounts =
        sqlx::query_as("SELECT id, name, version, updated_at, owner FROM account_projection ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let products = sqlx::query_as(
        "SELECT id, name, description, price_cents, version, updated_at FROM product_projection ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (accounts, products)
}

impl TestShop {
    fn kafka(&self) -> KafkaSettings {
        KafkaSettings {
            kafka_topic_prefix: self.settings.kafka_topic_prefix.clone(),
            ..KafkaSettings::new(self.shop.kafka_brokers.clone())
        }
    }

    fn order_settings(&self) -> shop_order::config::Settings {
        shop_order::config::Settings {
            database_url: self.settings.database_url("order"),
            kafka: self.kafka(),
            ..Default::default()
        }
    }

    async fn rebuild(&self, settings: &RebuildSettings) -> anyhow::Result<shop_projection::RebuildReport> {
        shop_order::projection::rebuild(&self.order_settings(), settings).await
    }

    /// `account republish` and `catalog republish`, as their commands run them, `batch_size` entities per
    /// transaction.
    async fn republish_accounts_and_products(&self, batch_size: u32) {
        let republish = RepublishSettings { batch_size, ..Default::default() };
        let account = shop_account::config::Settings {
            database_url: self.settings.database_url("account"),
            ..Default::default()
        };
        let args = shop_account::config::RepublishArgs { kafka: self.kafka(), republish: republish.clone() };
        let catalog = shop_catalog::config::Settings {
            database_url: self.settings.database_url("catalog"),
            kafka: self.kafka(),
            ..Default::default()
        };
        let (accounts, products) = tokio::join!(
            shop_account::republish::republish(&account, &args),
            shop_catalog::republish::republish(&catalog, &republish)
        );
        accounts.expect("account republish");
        products.expect("catalog republish");
    }

    /// Waits until the order service's projection holds exactly what the account and catalog services hold.
    async fn projection_caught_up(&self) {
        let (source_accounts, source_products) =
            (self.database("account").pool.clone(), self.database("catalog").pool.clone());
        let projection = self.database("order").pool.clone();
        eventually(Duration::from_secs(30), "the projection to match the services' tables", || async {
            (
                accounts(&projection, "account_projection").await,
                products(&projection, "product_projection").await,
            ) == (accounts(&source_accounts, "accounts").await, products(&source_products, "products").await)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_topic_makes_the_rebuild_refuse_until_a_republish_refills_it() {
    // Arrange: accounts and products, all in the live projection; then the topics lose their first records.
    let shop = start_shop().await;
    for i in 0..12 {
        shop.client.create_account(&format!("customer {i}")).await;
        shop.client.create_product(&format!("product {i}"), "A thing.", 1.0 + f64::from(i)).await;
    }
    shop.projection_caught_up().await;
    let pool = shop.database("order").pool.clone();
    let live = projection(&pool).await;
    let mut first_offsets = Vec::new();
    for topic in [topics::ACCOUNTS, topics::PRODUCTS] {
        for (partition, low) in shop.broker.delete_first_records(&shop.broker.topic(topic)).await {
            first_offsets.push((topic, partition, low));
        }
    }

    // Act: rebuild, republish, rebuild again.
    let refused = shop.rebuild(&RebuildSettings::default()).await.expect_err("a refusal");
    let after_refusal = projection(&pool).await;
    shop.republish_accounts_and_products(5).await;
    let report =
        shop.rebuild(&RebuildSettings::default()).await.expect("a complete rebuild after the republish");

    // Assert: the refusal named every partition with its first offset and the commands to run, and changed
    // nothing; after the republish the rebuilt projection equals the live one, row by row.
    let refusal = refused.downcast_ref::<IncompleteHistory>().unwrap_or_else(|| panic!("{refused:#}"));
    let named: Vec<(&str, i32, i64)> =
        refusal.missing.iter().map(|gap| (gap.topic.as_str(), gap.partition, gap.first_offset)).collect();
    assert_eq!(named, first_offsets);
    let message = refused.to_string();
    for expected in ["`account republish`", "`catalog republish`", "--accept-incomplete-history"] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    println!("The refusal:\n{message}\nThe rebuild after the republish: {report}");
    assert_eq!(after_refusal, live, "a refused rebuild changes nothing");
    assert!(report.missing_history.is_empty(), "{report}");
    let rebuilt = projection(&pool).await;
    assert_eq!(rebuilt.0, live.0, "accounts");
    assert_eq!(rebuilt.1, live.1, "products");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_a_rebuild_of_a_truncated_topic_goes_on_and_says_what_is_missing() {
    // Arrange
    let shop = start_shop().await;
    for i in 0..6 {
        shop.client.create_account(&format!("customer {i}")).await;
    }
    shop.projection_caught_up().await;
    let lost = shop.broker.delete_first_records(&shop.broker.topic(topics::ACCOUNTS)).await;

    // Act
    let accepting = RebuildSettings { accept_incomplete_history: true, ..Default::default() };
    let report = shop.rebuild(&accepting).await.expect("an incomplete rebuild, as accepted");

    // Assert: the report names what is missing, and the projection lacks the accounts whose records were lost.
    let missing: Vec<(String, i32, i64)> = report
        .missing_history
        .iter()
        .map(|gap| (gap.topic.clone(), gap.partition, gap.first_offset))
        .collect();
    let expected: Vec<(String, i32, i64)> =
        lost.iter().map(|(partition, low)| (topics::ACCOUNTS.to_owned(), *partition, *low)).collect();
    assert_eq!(missing, expected);
    let shown = report.to_string();
    assert!(
        shown.contains("INCOMPLETE") && shown.contains("shop.accounts.v1 partition 0 from offset"),
        "{shown}"
    );
    let (accounts, _) = projection(&shop.database("order").pool).await;
    assert!(accounts.is_empty(), "every account's only record was deleted: {accounts:?}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_while_writes_go_on_changes_nothing_for_a_projection_that_holds_every_version() {
    // Arrange: a projection holding every account and product; the row versions Postgres gave them (xmin).
    let shop = start_shop().await;
    let mut products = Vec::new();
    for i in 0..20 {
        shop.client.create_account(&format!("customer {i}")).await;
        products.push(shop.client.create_product(&format!("product {i}"), "", 1.0).await);
    }
    shop.projection_caught_up().await;
    let pool = shop.database("order").pool.clone();
    let rows = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (Uuid, String)>(sqlx::AssertSqlSafe(format!(
                "SELECT id, xmin::text FROM {table} ORDER BY id"
            )))
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let (accounts_before, products_before) =
        (rows("account_projection").await, rows("product_projection").await);
    // A writer that keeps renaming the first five products and opening accounts.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (client, writing, renamed) = (shop.client.clone(), writing.clone(), products[..5].to_vec());
        async move {
            let mut written = 0_u32;
            while writing.load(Ordering::Relaxed) {
                let id = &renamed[written as usize % renamed.len()];
                client
                    .data(
                        "mutation($id: String!, $n: String!) { updateProduct(id: $id, product: {name: $n, price: 2.5}) { id } }",
                        json!({ "id": id, "n": format!("renamed {written}") }),
                    )
                    .await;
                client.create_account(&format!("late {written}")).await;
                written += 1;
            }
            written
        }
    });

    // Act: republish in small batches while the writer goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shop.republish_accounts_and_products(3).await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();

    // Assert: the projection matches the services; no row it held was written again (its records were ignored by
    // version) except the products the writer changed; and each topic carries a republished record per entity.
    shop.projection_caught_up().await;
    let changed: Vec<Uuid> = products[..5].iter().map(|id| id.parse().unwrap()).collect();
    let (accounts_after, products_after) =
        (rows("account_projection").await, rows("product_projection").await);
    assert!(written > 0, "writes should have gone on during the republish");
    assert!(accounts_before.iter().all(|row| accounts_after.contains(row)), "accounts were written again");
    for row in products_before.iter().filter(|(id, _)| !changed.contains(id)) {
        assert!(products_after.contains(row), "product {} was written again", row.0);
    }
    let skipped = shop_testkit::count_rows(&pool, "projection_skipped").await;
    assert_eq!(skipped, 0, "every republished record decodes");
    let republished = shop
        .broker
        .read_until(&shop.broker.topic(topics::PRODUCTS), Duration::from_secs(20), |records| {
            records.iter().filter(|r| r.headers["ce_type"] == "shop.product.republished.v1").count() >= 20
        })
        .await;
    let republished =
        republished.iter().filter(|r| r.headers["ce_type"] == "shop.product.republished.v1").count();
    println!("Republished 20 products while {written} rounds of writes went on.");
    assert_eq!(republished, 20);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_republish_puts_every_order_on_the_topic_again_at_its_current_version() {
    // Arrange: three confirmed orders.
    let shop = start_shop().await;
    let account = shop.client.create_account("Ada").await;
    let product = shop.client.create_product("Kettle", "Boils water.", 24.99).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        let order = shop.client.create_order(&account, &[(&product, 1)]).await;
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    for order in &orders {
        shop.settled_order(order).await;
    }

    // Act
    let republish = RepublishSettings::default();
    let completed =
        shop_order::republish::republish(&shop.order_settings(), &republish).await.expect("the run");

    // Assert: per order, a republished record carrying what its latest event carries, at the same version.
    let topic = shop.broker.topic(topics::ORDERS);
    let records = shop
        .broker
        .read_until(&topic, Duration::from_secs(20), |records| {
            records.iter().filter(|r| r.headers["ce_type"] == "shop.order.republished.v1").count() >= 3
        })
        .await;
    assert_eq!(completed.entities, 3);
    for order in &orders {
        let of_order: Vec<&ReadRecord> = records.iter().filter(|record| record.key == *order).collect();
        let (republished, changes): (Vec<&ReadRecord>, Vec<&ReadRecord>) =
            of_order.into_iter().partition(|record| record.headers["ce_type"] == "shop.order.republished.v1");
        let latest = changes.iter().max_by_key(|record| record.version()).unwrap();
        assert_eq!(republished.len(), 1, "order {order}");
        assert_eq!(republished[0].version(), latest.version());
        assert_eq!(republished[0].json(), latest.json());
        assert!(republished[0].offset > latest.offset);
    }
    shop.stop().await;
}
