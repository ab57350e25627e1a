use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use rand::Rng;
use shop_events::{Envelope, envelope::now};
use shop_outbox as outbox;
use shop_platform::{kafka::KafkaSettings, postgres::PoolSettings, telemetry::TelemetrySettings};
use shop_relay::{
    config::{RelaySettings, Settings},
    startup::Application,
};
pub(crate) use shop_testkit::eventually;
use shop_testkit::{RunningServer, TestDatabase};
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) use shop_testkit::kafka::TestBroker as Broker;

/// A database with a migrated outbox.
pub(crate) async fn outbox_database() -> TestDatabase {
    let database = TestDatabase::create().await;
    outbox::migrate(&database.pool).await.unwrap();
    database
}

/// Relay settings for tests: small batches, short leases, quick polling, metrics on a free port.
pub(crate) fn relay_settings(database: &TestDatabase, broker: &Broker) -> Settings {
    Settings {
        database_urls: vec![database.url.parse().unwrap()],
        database: PoolSettings::default(),
        kafka: KafkaSettings {
            kafka_topic_prefix: broker.topic_prefix.clone(),
            ..KafkaSettings::new(broker.bootstrap.clone())
        },
        relay: RelaySettings {
            batch_size: 500,
            poll_interval_ms: 200,
            lease_ttl_ms: 2_000,
            shutdown_grace_ms: 2_000,
            ..RelaySettings::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        telemetry: TelemetrySettings::default(),
    }
}

/// A relay running in this process.
pub(crate) struct RunningRelay {
    pub(crate) metrics_url: String,
    pub(crate) ready_url: String,
    pub(crate) instance_id: Uuid,
    pub(crate) server: RunningServer,
}

pub(crate) async fn spawn_relay(settings: &Settings) -> RunningRelay {
    let application = Application::build(settings).await.expect("Failed to build the relay");
    let metrics_url = format!("http://{}/metrics", application.metrics_addr());
    let ready_url = format!("http://{}/health/ready", application.metrics_addr());
    let instance_id = application.instance_id();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    RunningRelay { metrics_url, ready_url, instance_id, server }
}

/// `settings` with Kafka reached through `proxy`.
pub(crate) fn through(mut settings: Settings, proxy: &shop_testkit::proxy::KafkaProxy) -> Settings {
    settings.kafka.kafka_brokers = proxy.bootstrap();
    settings
}

/// How many shards `instance` holds under a live lease.
pub(crate) async fn shards_held(pool: &PgPool, instance: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox_relay_shards WHERE owner = $1 AND lease_expires_at > now()",
    )
    .bind(instance)
    .fetch_one(pool)
    .await
    .unwrap()
}

impl RunningRelay {
    /// The readiness check's status code and body.
    pub(crate) async fn ready(&self) -> (u16, serde_json::Value) {
        let response = reqwest::get(&self.ready_url).await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The value of metric `name` with `outbox="{outbox}"`, from `/metrics`.
    pub(crate) async fn metric(&self, name: &str, outbox: &str) -> f64 {
        let body = reqwest::get(&self.metrics_url).await.unwrap().text().await.unwrap();
        let prefix = format!("{name}{{outbox=\"{outbox}\"}} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
    }
}

/// An event of a test aggregate, on `topic`.
pub(crate) fn event(topic: &str, aggregate_id: Uuid, version: i64, payload_bytes: usize) -> Envelope {
    Envelope {
        event_id: Uuid::now_v7(),
        aggregate_type: "widget".into(),
        aggregate_id,
        aggregate_version: version,
        event_type: "shop.widget.changed.v1".into(),
        topic: topic.to_owned(),
        payload: serde_json::json!({ "id": aggregate_id, "version": version, "padding": "x".repeat(payload_bytes) }),
        occurred_at: now(),
        trace: None,
    }
}

/// Appends `events` in one transaction.
pub(crate) async fn append(pool: &PgPool, events: &[Envelope]) {
    let mut transaction = pool.begin().await.unwrap();
    for event in events {
        outbox::append(&mut transaction, event).await.unwrap();
    }
    transaction.commit().await.unwrap();
}

/// The expected outcome of a workload: the last version written per aggregate.
pub(crate) type Written = HashMap<Uuid, i64>;

/// `writers` concurrent writers append `versions` versions to each of `aggregates` aggregates on `topic`, each
/// writer owning a slice of the aggregates and writing them in transactions of 1 to 10 events. One transaction
/// in eight is held open for 50–200 ms while the other writers commit, so positions commit out of order.
pub(crate) async fn concurrent_workload(
    pool: &PgPool,
    topic: &str,
    writers: usize,
    aggregates: usize,
    versions: i64,
) -> Written {
    let ids: Vec<Uuid> = (0..aggregates).map(|_| Uuid::now_v7()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let mine: Vec<Uuid> = ids.iter().skip(writer).step_by(writers).copied().collect();
        let (pool, topic) = (pool.clone(), topic.to_owned());
        tasks.spawn(async move {
            let mut next: BTreeMap<Uuid, i64> = mine.iter().map(|id| (*id, 1)).collect();
            let mut remaining: usize = mine.len() * versions as usize;
            while remaining > 0 {
                let (size, hold) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=10).min(remaining),
                        rng.random_ratio(1, 8).then(|| rng.random_range(50..200)),
                    )
                };
                let mut transaction = pool.begin().await.unwrap();
                for _ in 0..size {
                    let id = {
                        let open: Vec<Uuid> =
                            next.iter().filter(|(_, v)| **v <= versions).map(|(id, _)| *id).collect();
                        open[rand::rng().random_range(0..open.len())]
                    };
                    let version = next[&id];
                    outbox::append(&mut transaction, &event(&topic, id, version, 64)).await.unwrap();
                    next.insert(id, version + 1);
                }
                if let Some(hold_ms) = hold {
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                }
                transaction.commit().await.unwrap();
                remaining -= size;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    ids.into_iter().map(|id| (id, versions)).collect()
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) key: Uuid,
    pub(crate) version: i64,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) payload: serde_json::Value,
}

/// Reads `topic` from the beginning until `expected` distinct (key, version) pairs arrived or `timeout` passed.
pub(crate) async fn read_topic(
    broker: &Broker,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    let distinct = move |records: &[shop_testkit::kafka::ReadRecord]| {
        records.iter().map(|r| (r.key.clone(), r.version())).collect::<std::collections::HashSet<_>>().len()
            >= expected
    };
    let records = broker.read_until(topic, timeout, distinct).await;
    records
        .into_iter()
        .map(|record| Received {
            key: record.key.parse().expect("a UUID key"),
            version: record.version(),
            payload: record.json(),
            headers: record.headers,
        })
        .collect()
}

/// What reading back showed.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) records: usize,
    pub(crate) duplicates: usize,
}

/// Checks, per key, that first copies of versions arrive as 1, 2, 3 … with no gap, that every written event
/// arrived, and that nothing else did; counts repeated copies (at-least-once redeliveries).
pub(crate) fn verify(received: &[Received], written: &Written) -> Verdict {
    let mut next: HashMap<Uuid, i64> = HashMap::new();
    let mut duplicates = 0;
    for record in received {
        let expected = next.entry(record.key).or_insert(1);
        match record.version.cmp(expected) {
            std::cmp::Ordering::Equal => *expected += 1,
            std::cmp::Ordering::Less => duplicates += 1,
            std::cmp::Ordering::Greater => panic!(
                "aggregate {}: version {} arrived before version {} (out of order or a gap)",
                record.key, record.version, expected
            ),
        }
        assert_eq!(record.payload["version"], record.version, "the payload matches its header");
    }
    for (id, last) in written {
        let arrived = next.get(id).map_or(0, |next| next - 1);
        assert_eq!(arrived, *last, "aggregate {id}: {arrived} of {last} versions arrived");
    }
    assert_eq!(next.len(), written.len(), "records arrived for aggregates nobody wrote");
    Verdict { records: received.len(), duplicates }
}

/// Unpublished rows left in the outbox.
pub(crate) async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}
