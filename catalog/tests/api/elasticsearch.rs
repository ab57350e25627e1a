//! The Elasticsearch search backend against a real cluster at `ELASTICSEARCH_URL`. Built without one, these tests
//! are ignored and say why (see build.rs); the request bodies and response parsing are unit-tested in
//! `search::documents` either way.

use std::time::Duration;

use shop_catalog::{
    config::Settings,
    grpc::client::CatalogClient,
    search::{ProductIndex, SearchBackend, SearchIndexProjection, SearchSettings},
    startup::Application,
};
use shop_events::{catalog::Product, cloudevents::EventMetadata, envelope::now};
use shop_platform::kafka::KafkaSettings;
use shop_projection as consumer;
use shop_proto::catalog::v1::GetProductsRequest;
use shop_testkit::{RunningServer, TestDatabase, eventually, kafka::TestBroker, outbox_rows};
use uuid::Uuid;

fn elasticsearch_url() -> String {
    std::env::var("ELASTICSEARCH_URL").expect("ELASTICSEARCH_URL was set when the tests were built")
}

struct EsApp {
    database: TestDatabase,
    client: CatalogClient,
    index: ProductIndex,
    _server: RunningServer,
}

fn kafka(broker: &TestBroker) -> KafkaSettings {
    KafkaSettings {
        kafka_topic_prefix: broker.topic_prefix.clone(),
        ..KafkaSettings::new(broker.bootstrap.clone())
    }
}

async fn spawn_es_app(url: &str, broker: &TestBroker) -> EsApp {
    let database = TestDatabase::create().await;
    let alias = format!("test-products-{}", Uuid::now_v7().simple());
    let settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        search: SearchSettings {
            search_backend: SearchBackend::Elasticsearch,
            elasticsearch_url: url.into(),
            elasticsearch_index: alias.clone(),
        },
        kafka: kafka(broker),
        ..Default::default()
    };
    let application = Application::build(&settings).await.unwrap();
    let address = application.local_addr();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    EsApp {
        database,
        client: CatalogClient::connect(format!("http://{address}")).await.unwrap(),
        index: ProductIndex::new(url, &alias).unwrap(),
        _server: server,
    }
}

/// Publishes the catalog's outbox rows to the broker, as the relay would.
async fn relay_outbox(app: &EsApp, broker: &TestBroker) {
    for row in outbox_rows(&app.database.pool).await {
        let metadata = EventMetadata {
            event_id: row.event_id,
            aggregate_type: &row.aggregate_type,
            aggregate_id: row.aggregate_id,
            aggregate_version: row.aggregate_version,
            event_type: &row.event_type,
            occurred_at: row.occurred_at,
            traceparent: row.traceparent.as_deref(),
            tracestate: None,
        };
        let payload = serde_json::to_vec(&row.payload).unwrap();
        broker
            .produce(&broker.topic(&row.topic), &row.aggregate_id.to_string(), &metadata.headers(), &payload)
            .await;
    }
    sqlx::query("DELETE FROM outbox").execute(&app.database.pool).await.unwrap();
}

async fn search(app: &EsApp, text: &str, expected: usize) -> Vec<String> {
    let found = || async {
        app.index.refresh().await.unwrap();
        let request = GetProductsRequest { query: text.into(), ..Default::default() };
        app.client.get_products(request).await.unwrap().into_iter().map(|p| p.name).collect::<Vec<String>>()
    };
    eventually(Duration::from_secs(10), "the search to find the products", || async {
        found().await.len() >= expected
    })
    .await;
    found().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(elasticsearch), ignore = "needs an Elasticsearch at ELASTICSEARCH_URL")]
async fn product_events_feed_the_index_and_searches_rank_name_matches_first() {
    let url = elasticsearch_url();
    let broker = TestBroker::start().await;
    let app = spawn_es_app(&url, &broker).await;
    app.client.post_product("Kettle", "Stainless steel electric kettle.", 2_499).await.unwrap();
    app.client.post_product("Teapot", "Porcelain; pairs well with a kettle.", 1_999).await.unwrap();
    app.client.post_product("Mug", "For tea or coffee.", 899).await.unwrap();

    relay_outbox(&app, &broker).await;

    assert_eq!(search(&app, "kettle", 2).await, ["Kettle", "Teapot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(elasticsearch), ignore = "needs an Elasticsearch at ELASTICSEARCH_URL")]
async fn an_older_version_never_overwrites_a_newer_one_in_the_index() {
    let url = elasticsearch_url();
    let database = TestDatabase::create().await;
    shop_catalog::database::connect(&Settings {
        database_url: database.url.parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let index = ProductIndex::new(&url, &format!("test-products-{}", Uuid::now_v7().simple())).unwrap();
    index.ensure_exists().await.unwrap();
    let id = Uuid::now_v7();
    let product = |version: i64, name: &str| Product {
        id,
        name: name.into(),
        description: String::new(),
        price_cents: 1,
        stock: None,
        version,
        created_at: now(),
        updated_at: now(),
    };
    let (v1, v2) = (product(1, "Old kettle"), product(2, "New kettle"));

    let outcomes_new = index.index(index.alias(), &[&v2]).await.unwrap();
    let outcomes_old = index.index(index.alias(), &[&v1]).await.unwrap();
    index.refresh().await.unwrap();

    assert_eq!(outcomes_new, [consumer::Outcome::Applied]);
    assert_eq!(outcomes_old, [consumer::Outcome::Ignored]);
    assert_eq!(index.search("new", None, 0, 10).await.unwrap(), [id]);
    assert!(index.search("old", None, 0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(elasticsearch), ignore = "needs an Elasticsearch at ELASTICSEARCH_URL")]
async fn a_rebuild_replays_the_topic_into_a_fresh_index_and_swaps_the_alias() {
    let url = elasticsearch_url();
    let broker = TestBroker::start().await;
    let app = spawn_es_app(&url, &broker).await;
    app.client.post_product("Kettle", "Electric.", 2_499).await.unwrap();
    relay_outbox(&app, &broker).await;
    search(&app, "kettle", 1).await;

    let live = SearchIndexProjection::live(app.index.clone());
    let report = consumer::rebuild(
        &live,
        &app.database.pool,
        &consumer::Source::from_settings(&kafka(&broker)),
        &Default::default(),
        |_| {},
    )
    .await
    .unwrap();

    assert!(report.consumed >= 1);
    assert_eq!(search(&app, "kettle", 1).await, ["Kettle"]);
}
