//! The consumer toolkit against a real Postgres and a real Kafka-protocol broker, with a small projection of
//! "widgets" (id → name, version).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use shop_events::{Envelope, cloudevents, envelope::now};
use shop_platform::{health::Health, supervisor::Part};
use shop_projection::{
    self as consumer, BatchOptions, Outcome, Projection, ProjectionError, ProjectionRunner, Rebuildable,
    Record, apply_batch, rebuild,
};
use shop_testkit::{TestDatabase, eventually, kafka::TestBroker, proxy::KafkaProxy};
use sqlx::{PgPool, PgTransaction};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a test waits for the consumer to get somewhere. Only an upper bound: a group join, which every first
/// wait includes, has taken over 30 s with the whole suite running on two cores.
const PATIENCE: Duration = Duration::from_secs(60);

/// Widgets by id, at their latest version.
struct Widgets {
    name: String,
    table: String,
    topics: Vec<&'static str>,
}

impl Widgets {
    async fn create(pool: &PgPool, topic: &str, name: &str) -> Self {
        let table = name.replace(['-', '.'], "_");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id uuid PRIMARY KEY, name text NOT NULL, version bigint NOT NULL)"
        )))
        .execute(pool)
        .await
        .unwrap();
        Self { name: name.to_owned(), table, topics: vec![Box::leak(topic.to_owned().into_boxed_str())] }
    }

    async fn rows(&self, pool: &PgPool) -> Vec<(Uuid, String, i64)> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, name, version FROM {} ORDER BY id",
            self.table
        )))
        .fetch_all(pool)
        .await
        .unwrap()
    }
}

impl Projection for Widgets {
    fn name(&self) -> &str {
        &self.name
    }

    fn topics(&self) -> &[&'static str] {
        &self.topics
    }

    async fn apply(
        &self,
        transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> Result<Vec<Outcome>, ProjectionError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let metadata = match record.metadata() {
                Ok(metadata) => metadata,
                Err(error) => {
                    outcomes.push(Outcome::Skipped(error.to_string()));
                    continue;
                }
            };
            let Some(name) = serde_json::from_slice::<serde_json::Value>(record.payload())
                .ok()
                .and_then(|payload| payload["name"].as_str().map(str::to_owned))
            else {
                outcomes.push(Outcome::Skipped("the payload has no name".into()));
                continue;
            };
            let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (id, name, version) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version
                 WHERE {table}.version < EXCLUDED.version",
                table = self.table
            )))
            .bind(metadata.aggregate_id)
            .bind(name)
            .bind(metadata.aggregate_version)
            .execute(&mut **transaction)
            .await?
            .rows_affected();
            outcomes.push(if changed == 1 { Outcome::Applied } else { Outcome::Ignored });
        }
        Ok(outcomes)
    }
}

impl Rebuildable for Widgets {
    async fn prepare_shadow(&self, pool: &PgPool) -> anyhow::Result<Self> {
        let table = format!("{}_rebuild", self.table);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).execute(pool).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {table} (LIKE {} INCLUDING ALL)", self.table)))
            .execute(pool)
            .await?;
        Ok(Self { name: format!("{}.rebuild", self.name), table, topics: self.topics.clone() })
    }

    async fn swap_in(&self, shadow: &Self, transaction: &mut PgTransaction<'_>) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {}", self.table)))
            .execute(&mut **transaction)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {} RENAME TO {}", shadow.table, self.table)))
            .execute(&mut **transaction)
            .await?;
        Ok(())
    }
}

fn widget_event(id: Uuid, version: i64, name: &str) -> Envelope {
    Envelope {
        event_id: Uuid::now_v7(),
        aggregate_type: "widget".into(),
        aggregate_id: id,
        aggregate_version: version,
        event_type: "shop.widget.renamed.v1".into(),
        topic: String::new(),
        payload: serde_json::json!({ "name": name }),
        occurred_at: now(),
        trace: None,
    }
}

/// A consumed record as the relay would have published `event`, at `offset`.
fn record(topic: &str, offset: i64, event: &Envelope) -> Record {
    Record::of_event(topic, 0, offset, event)
}

async fn publish(producer: &FutureProducer, topic: &str, event: &Envelope) {
    let payload = serde_json::to_vec(&event.payload).unwrap();
    let key = event.aggregate_id.to_string();
    let headers = event
        .metadata()
        .headers()
        .iter()
        .fold(OwnedHeaders::new(), |h, (name, value)| h.insert(Header { key: name, value: Some(value) }));
    producer
        .send(FutureRecord::to(topic).key(&key).payload(&payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)
        .unwrap();
}

/// A widgets projection over a one-partition topic of its own, a producer, and two good events to publish.
struct OneTopic {
    broker: TestBroker,
    database: TestDatabase,
    topic: String,
    widgets: Arc<Widgets>,
    producer: FutureProducer,
    first: Envelope,
    second: Envelope,
}

async fn one_topic() -> OneTopic {
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 1).await;
    let widgets = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    let producer: FutureProducer = broker.client_config().create().unwrap();
    let (first, second) =
        (widget_event(Uuid::now_v7(), 1, "first"), widget_event(Uuid::now_v7(), 1, "second"));
    OneTopic { broker, database, topic, widgets, producer, first, second }
}

async fn database() -> TestDatabase {
    let database = TestDatabase::create().await;
    consumer::migrate(&database.pool).await.unwrap();
    database
}

#[tokio::test]
async fn a_redelivered_batch_is_not_applied_twice() {
    // Arrange
    let database = database().await;
    let widgets = Widgets::create(&database.pool, "widgets", "widgets").await;
    let id = Uuid::now_v7();
    let batch = [
        record("widgets", 0, &widget_event(id, 1, "one")),
        record("widgets", 1, &widget_event(id, 2, "two")),
    ];

    // Act
    let first = apply_batch(&database.pool, &widgets, &batch, BatchOptions::default()).await.unwrap();
    let again = apply_batch(&database.pool, &widgets, &batch, BatchOptions::default()).await.unwrap();

    // Assert
    assert_eq!((first.applied, first.already_applied), (2, 0));
    assert_eq!((again.applied, again.already_applied), (0, 2));
    assert_eq!(widgets.rows(&database.pool).await, [(id, "two".to_owned(), 2)]);
}

#[tokio::test]
async fn an_older_version_or_a_repeat_at_a_new_offset_leaves_the_projection_unchanged() {
    let database = database().await;
    let widgets = Widgets::create(&database.pool, "widgets", "widgets").await;
    let id = Uuid::now_v7();
    let (v1, v2) = (widget_event(id, 1, "one"), widget_event(id, 2, "two"));

    let summary = apply_batch(
        &database.pool,
        &widgets,
        &[record("widgets", 0, &v2), record("widgets", 1, &v1), record("widgets", 2, &v2)],
        BatchOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!((summary.applied, summary.ignored), (1, 2));
    assert_eq!(widgets.rows(&database.pool).await, [(id, "two".to_owned(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_skips_and_counts_a_poison_record_and_keeps_going() {
    // Arrange
    let OneTopic { broker, database, topic, widgets, producer, first, second } = one_topic().await;
    publish(&producer, &topic, &first).await;
    broker.produce(&topic, "garbage", &[], b"\x00not json").await;
    publish(&producer, &topic, &second).await;

    // Act
    let runner =
        ProjectionRunner::new(widgets.clone(), database.pool.clone(), broker.client_config().into_source());
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let running = spawn_runner(runner, &stop);
    eventually(PATIENCE, "the records applied", || async { stats.applied() == 2 && stats.skipped() == 1 })
        .await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert
    assert_eq!(widgets.rows(&database.pool).await.len(), 2);
    let skipped: Vec<(i64, String)> =
        sqlx::query_as(r#"SELECT "offset", reason FROM projection_skipped WHERE projection = 'widgets'"#)
            .fetch_all(&database.pool)
            .await
            .unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, 1);
    assert!(skipped[0].1.contains("ce_id"), "{}", skipped[0].1);
    let offsets =
        consumer::stored_offsets(&mut database.pool.acquire().await.unwrap(), "widgets").await.unwrap();
    assert_eq!(offsets[&(topic, 0)], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_trickle_is_applied_in_batches_that_close_the_batch_wait_after_their_first_record() {
    // Arrange: a runner caught up, whose fetches come back at once, so a trickle reaches it a few milliseconds
    // apart.
    let OneTopic { broker, database, topic, widgets, producer, first, .. } = one_topic().await;
    let mut config = broker.client_config();
    for (key, value) in consumer::CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    config.set("session.timeout.ms", "6000").set("fetch.wait.max.ms", "1");
    let runner = ProjectionRunner::new(widgets.clone(), database.pool.clone(), consumer::Source::new(config))
        .with_settings(consumer::RunnerSettings { batch_size: 500, batch_wait: Duration::from_millis(20) });
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let running = spawn_runner(runner, &stop);
    publish(&producer, &topic, &first).await;
    eventually(PATIENCE, "the first record applied", || async { stats.applied() == 1 }).await;

    // Act: 100 records, each sent 5 ms after the last was acknowledged.
    for index in 0..100 {
        publish(&producer, &topic, &widget_event(Uuid::now_v7(), 1, &format!("trickle {index}"))).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eventually(PATIENCE, "the trickle applied", || async { stats.applied() == 101 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert: had the wait counted from each record, the trickle would have kept one batch open to its end.
    let batches = stats.batches() - 1;
    println!("A trickle of 100 records was applied in {batches} batches");
    assert!(batches >= 5, "a trickle of about a second was applied in {batches} batches");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_writes_continue_equals_the_live_projection_row_by_row() {
    // Arrange: a live projection and a reference copy that is never rebuilt, both fed while widgets change.
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 3).await;
    let live = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    let reference = Arc::new(Widgets::create(&database.pool, &topic, "widgets-reference").await);
    let source = broker.client_config().into_source();
    let stop = CancellationToken::new();
    let live_runner = ProjectionRunner::new(live.clone(), database.pool.clone(), source.clone());
    let reference_runner = ProjectionRunner::new(reference.clone(), database.pool.clone(), source.clone());
    let runners = [spawn_runner(live_runner, &stop), spawn_runner(reference_runner, &stop)];

    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let producer: FutureProducer = broker.client_config().create().unwrap();
        let (topic, ids, writing) = (topic.clone(), ids.clone(), writing.clone());
        async move {
            let mut versions: HashMap<Uuid, i64> = HashMap::new();
            let mut round = 0;
            while writing.load(Ordering::Relaxed) || round < 5 {
                round += 1;
                for id in &ids {
                    let version = versions.entry(*id).or_insert(0);
                    *version += 1;
                    publish(&producer, &topic, &widget_event(*id, *version, &format!("{id} v{version}")))
                        .await;
                }
            }
            versions
        }
    });

    // Act: rebuild while the writer goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut progress = Vec::new();
    let report = rebuild(&*live, &database.pool, &source, &Default::default(), |p| progress.push(p.consumed))
        .await
        .unwrap();
    writing.store(false, Ordering::Relaxed);
    let versions = writer.await.unwrap();
    let expected: Vec<(Uuid, String, i64)> = {
        let mut rows: Vec<_> = versions.iter().map(|(id, v)| (*id, format!("{id} v{v}"), *v)).collect();
        rows.sort();
        rows
    };
    wait_for_rows(&live, &database.pool, &expected).await;
    wait_for_rows(&reference, &database.pool, &expected).await;
    stop.cancel();
    for runner in runners {
        runner.await.unwrap().unwrap();
    }

    // Assert
    println!(
        "Rebuilt from {} records ({} applied, {} ignored, {} caught up before the swap) in {:?}; {} progress reports",
        report.consumed,
        report.applied,
        report.ignored,
        report.caught_up,
        report.elapsed,
        progress.len()
    );
    assert!(report.consumed > 0);
    assert!(!progress.is_empty());
    assert_eq!(live.rows(&database.pool).await, reference.rows(&database.pool).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_is_dead_lettered_and_the_partition_goes_on() {
    // Arrange: a name with a NUL, which no Postgres text column can hold, between two good records.
    let OneTopic { broker, database, topic, widgets, producer, first, second } = one_topic().await;
    let poison = widget_event(Uuid::now_v7(), 1, "bad\0name");
    for event in [&first, &poison, &second] {
        publish(&producer, &topic, event).await;
    }

    // Act
    let runner =
        ProjectionRunner::new(widgets.clone(), database.pool.clone(), broker.client_config().into_source());
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let running = spawn_runner(runner, &stop);
    eventually(PATIENCE, "the good records applied and the poison one dead-lettered", || async {
        stats.applied() == 2 && stats.dead_lettered() == 1
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert
    assert_eq!(widgets.rows(&database.pool).await.len(), 2);
    let dead: Vec<(i64, Option<Vec<u8>>, i32, String)> = sqlx::query_as(
        r#"SELECT "offset", key, attempts, reason FROM projection_skipped WHERE projection = 'widgets'"#,
    )
    .fetch_all(&database.pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    let (offset, key, attempts, reason) = &dead[0];
    assert_eq!(*offset, 1);
    assert_eq!(key.as_deref(), Some(poison.aggregate_id.to_string().as_bytes()));
    assert_eq!(*attempts, consumer::MAX_RECORD_ATTEMPTS as i32);
    assert!(reason.contains("22021") || reason.contains("invalid byte sequence"), "{reason}");
    let offsets =
        consumer::stored_offsets(&mut database.pool.acquire().await.unwrap(), "widgets").await.unwrap();
    assert_eq!(offsets[&(topic, 0)], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_headers_no_text_column_can_hold_is_skipped_and_the_partition_goes_on() {
    // Arrange: a record whose ce_id (kept with the position, as the last of its batch) and ce_type (kept with the
    // skipped record) hold a NUL and run to 100 000 characters. Nothing is produced after it until it is handled,
    // so that it ends its batch.
    let OneTopic { broker, database, topic, widgets, producer, first, second } = one_topic().await;
    publish(&producer, &topic, &first).await;
    let poison = widget_event(Uuid::now_v7(), 1, "poison");
    let mut headers: Vec<(&str, String)> = poison.metadata().headers();
    for (name, value) in &mut headers {
        if [cloudevents::ID, cloudevents::TYPE].contains(name) {
            *value = format!("{value}\0{}", "x".repeat(100_000));
        }
    }
    let payload = serde_json::to_vec(&poison.payload).unwrap();
    broker.produce(&topic, &poison.aggregate_id.to_string(), &headers, &payload).await;
    let start = || {
        let runner = ProjectionRunner::new(
            widgets.clone(),
            database.pool.clone(),
            broker.client_config().into_source(),
        );
        let stats = runner.stats();
        let stop = CancellationToken::new();
        (stats, spawn_runner(runner, &stop), stop)
    };

    // Act: the poison record is handled, the runner restarts (judging its position by that record's id), and a
    // record after it comes.
    let (stats, running, stop) = start();
    eventually(PATIENCE, "the first record applied and the poison one skipped", || async {
        stats.applied() == 1 && stats.skipped() == 1
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let positions =
        consumer::stored_positions(&mut database.pool.acquire().await.unwrap(), "widgets").await.unwrap();
    let kept_id = positions[&(topic.clone(), 0)].last_record_id.clone().unwrap();
    let (stats, running, stop) = start();
    publish(&producer, &topic, &second).await;
    eventually(PATIENCE, "the record after the poison one applied", || async { stats.applied() == 1 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert
    assert!(kept_id.starts_with(&format!("{}\u{FFFD}xxx", poison.event_id)), "{kept_id:.60}");
    assert!(kept_id.chars().count() <= 65, "bounded, not {} characters", kept_id.chars().count());
    assert_eq!(stats.resets(), 0, "the restarted runner recognised the record at its position");
    assert_eq!(widgets.rows(&database.pool).await.len(), 2);
    let (offset, event_type): (i64, String) =
        sqlx::query_as(r#"SELECT "offset", event_type FROM projection_skipped WHERE projection = 'widgets'"#)
            .fetch_one(&database.pool)
            .await
            .unwrap();
    assert_eq!(offset, 1);
    assert!(event_type.starts_with("shop.widget.renamed.v1\u{FFFD}xxx"), "{event_type:.40}");
    assert!(event_type.chars().count() <= 257, "bounded, not {} characters", event_type.chars().count());
    let offsets =
        consumer::stored_offsets(&mut database.pool.acquire().await.unwrap(), "widgets").await.unwrap();
    assert_eq!(offsets[&(topic, 0)], 3);
}

/// Runs `runner` until `stop`, as a supervisor would.
fn spawn_runner(
    runner: ProjectionRunner<Widgets>,
    stop: &CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let stop = stop.clone();
    tokio::spawn(async move { runner.run_until_stopped(stop).await })
}

async fn wait_for_rows(widgets: &Widgets, pool: &PgPool, expected: &[(Uuid, String, i64)]) {
    eventually(PATIENCE, &format!("{} to catch up", widgets.name), || async {
        widgets.rows(pool).await == expected
    })
    .await;
}

trait ConsumerDefaults {
    fn into_source(self) -> consumer::Source;
}

impl ConsumerDefaults for rdkafka::ClientConfig {
    /// A source on this broker with the consumer defaults and a short session timeout.
    fn into_source(mut self) -> consumer::Source {
        for (key, value) in consumer::CONSUMER_DEFAULTS {
            self.set(*key, *value);
        }
        self.set("session.timeout.ms", "6000");
        consumer::Source::new(self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_restarted_from_zero_is_consumed_again_rather_than_skipped() {
    // Arrange: the projection's stored position is far beyond the end of a (new) topic.
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 1).await;
    let widgets = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    sqlx::query("INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES ('widgets', $1, 0, 500)")
        .bind(&topic)
        .execute(&database.pool)
        .await
        .unwrap();
    let producer: FutureProducer = broker.client_config().create().unwrap();
    publish(&producer, &topic, &widget_event(Uuid::now_v7(), 1, "new broker, first record")).await;

    // Act
    let runner =
        ProjectionRunner::new(widgets.clone(), database.pool.clone(), broker.client_config().into_source());
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let running = spawn_runner(runner, &stop);
    eventually(PATIENCE, "the record applied", || async { stats.applied() == 1 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert
    assert_eq!(widgets.rows(&database.pool).await.len(), 1);
    let offsets =
        consumer::stored_offsets(&mut database.pool.acquire().await.unwrap(), "widgets").await.unwrap();
    assert_eq!(offsets[&(topic, 0)], 1);
}

/// A runner on `widgets`, reading through `bootstrap`, reporting to a health part the test can read.
fn start_runner(
    widgets: &Arc<Widgets>,
    pool: &PgPool,
    bootstrap: &str,
    stop: &CancellationToken,
) -> (Arc<consumer::ProjectionStats>, Health, JoinHandle<anyhow::Result<()>>) {
    let runner = ProjectionRunner::new(widgets.clone(), pool.clone(), source_for(bootstrap));
    let (stats, health) = (runner.stats(), Health::new());
    let part = Part { stop: stop.clone(), health: health.part("widgets") };
    (stats, health, tokio::spawn(async move { runner.run(part).await }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_restored_behind_the_groups_offsets_gets_every_record_in_between() {
    // Arrange: five widgets applied, and the group's offsets committed at 5 when the runner stopped.
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 1).await;
    let widgets = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    let producer: FutureProducer = broker.client_config().create().unwrap();
    let events: Vec<Envelope> = (0..5).map(|i| widget_event(Uuid::now_v7(), 1, &format!("w{i}"))).collect();
    for event in &events {
        publish(&producer, &topic, event).await;
    }
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &broker.bootstrap, &stop);
    eventually(PATIENCE, "five widgets applied", || async { stats.applied() == 5 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Act: the database is restored from a backup taken after the second record; the group still says 5.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE name IN ('w2', 'w3', 'w4')",
        widgets.table
    )))
    .execute(&database.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE projection_offsets SET next_offset = 2, last_record_id = $1 WHERE projection = 'widgets'",
    )
    .bind(events[1].event_id.to_string())
    .execute(&database.pool)
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &broker.bootstrap, &stop);

    // Assert
    eventually(PATIENCE, "the three lost widgets applied again", || async { stats.applied() == 3 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(widgets.rows(&database.pool).await.len(), 5);
}

/// Two clusters with the same topic: the first holding three widgets, the second (the topic recreated, or a
/// fail-over) five others, so it has already grown past the position taken on the first.
struct TwoLogs {
    first: TestBroker,
    second: TestBroker,
    topic: String,
    on_second: Vec<Uuid>,
}

async fn two_logs() -> TwoLogs {
    let (first, second) = (TestBroker::start().await, TestBroker::start().await);
    let topic = format!("test-widgets-{}", Uuid::now_v7().simple());
    first.create_named_topic(&topic, 1).await;
    second.create_named_topic(&topic, 1).await;
    let on_first: FutureProducer = first.client_config().create().unwrap();
    for i in 0..3 {
        publish(&on_first, &topic, &widget_event(Uuid::now_v7(), 1, &format!("first {i}"))).await;
    }
    let on_second_producer: FutureProducer = second.client_config().create().unwrap();
    let on_second: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (i, id) in on_second.iter().enumerate() {
        publish(&on_second_producer, &topic, &widget_event(*id, 1, &format!("second {i}"))).await;
    }
    TwoLogs { first, second, topic, on_second }
}

/// A runner reading the first of [`two_logs`] through a proxy, once it has applied it.
struct OnTheFirstLog {
    logs: TwoLogs,
    database: TestDatabase,
    widgets: Arc<Widgets>,
    proxy: KafkaProxy,
    stop: CancellationToken,
    stats: Arc<consumer::ProjectionStats>,
    running: JoinHandle<anyhow::Result<()>>,
}

async fn on_the_first_log() -> OnTheFirstLog {
    let logs = two_logs().await;
    let database = database().await;
    let widgets = Arc::new(Widgets::create(&database.pool, &logs.topic, "widgets").await);
    let proxy = KafkaProxy::start(&logs.first.bootstrap).await;
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &proxy.bootstrap(), &stop);
    eventually(PATIENCE, "the first log applied", || async { stats.applied() == 3 }).await;
    OnTheFirstLog { logs, database, widgets, proxy, stop, stats, running }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "switches between two embedded clusters through the proxy")]
async fn a_log_replaced_under_a_running_consumer_is_read_again_from_its_beginning() {
    // Arrange: the runner has applied the first log.
    let OnTheFirstLog { logs, database, widgets, proxy, stop, stats, running } = on_the_first_log().await;

    // Act: the topic now lives on the second cluster.
    proxy.redirect(&logs.second.bootstrap);

    // Assert: every record of the new log is applied, including those before the old position.
    let ids = logs.on_second.clone();
    eventually(PATIENCE, "every widget of the second log", || {
        let (widgets, pool, ids) = (widgets.clone(), database.pool.clone(), ids.clone());
        async move {
            let held: Vec<Uuid> = widgets.rows(&pool).await.into_iter().map(|(id, _, _)| id).collect();
            ids.iter().all(|id| held.contains(id))
        }
    })
    .await;
    assert!(stats.resets() >= 1, "the runner said it started the partition over");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "switches between two embedded clusters through the proxy")]
async fn a_log_replaced_while_the_consumer_was_stopped_is_read_from_its_beginning() {
    let OnTheFirstLog { logs, database, widgets, proxy, stop, running, .. } = on_the_first_log().await;
    stop.cancel();
    running.await.unwrap().unwrap();

    proxy.redirect(&logs.second.bootstrap);
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &proxy.bootstrap(), &stop);

    eventually(PATIENCE, "the five widgets of the second log", || async { stats.applied() == 5 }).await;
    assert_eq!(stats.resets(), 1);
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "cuts the broker off through the proxy, which fronts a single broker")]
async fn a_consumer_started_while_kafka_is_unreachable_waits_says_so_and_then_consumes() {
    // Arrange: Kafka cannot be reached.
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 1).await;
    let widgets = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    proxy.cut();
    let stop = CancellationToken::new();
    let (stats, health, running) = start_runner(&widgets, &database.pool, &proxy.bootstrap(), &stop);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let while_cut = health.statuses()["widgets"].clone();

    // Act: Kafka comes back, and a widget is published.
    proxy.heal();
    let producer: FutureProducer = broker.client_config().create().unwrap();
    publish(&producer, &topic, &widget_event(Uuid::now_v7(), 1, "after the outage")).await;

    // Assert
    assert!(!while_cut.is_serving(), "{while_cut:?}");
    assert!(!running.is_finished(), "the runner waits rather than failing");
    eventually(PATIENCE, "the widget applied", || async { stats.applied() == 1 }).await;
    eventually(Duration::from_secs(10), "the runner to report serving", || async { health.is_serving() })
        .await;
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "creates a topic mid-rebuild on the embedded mock cluster")]
async fn a_rebuild_during_which_partitions_appear_finishes_and_the_live_projection_goes_on() {
    // Arrange: a projection over two topics, the second not created yet; the live runner has applied the first.
    let broker = TestBroker::start().await;
    let mock = broker.mock().expect("the embedded mock cluster");
    let database = database().await;
    let (first, second) =
        (broker.create_topic("test-widgets", 2).await, format!("test-later-{}", Uuid::now_v7().simple()));
    let mut widgets = Widgets::create(&database.pool, &first, "widgets").await;
    widgets.topics.push(Box::leak(second.clone().into_boxed_str()));
    let widgets = Arc::new(widgets);
    let producer: FutureProducer = broker.client_config().create().unwrap();
    for i in 0..300 {
        publish(&producer, &first, &widget_event(Uuid::now_v7(), 1, &format!("first {i}"))).await;
    }
    let stop = CancellationToken::new();
    let (stats, _, live) = start_runner(&widgets, &database.pool, &broker.bootstrap, &stop);
    eventually(PATIENCE, "the first topic applied", || async { stats.applied() == 300 }).await;

    // Act: the rebuild pauses after its first batch; meanwhile the second topic appears and the live projection
    // applies it.
    let (reached, wait_for_go) = (std::sync::mpsc::channel::<()>(), std::sync::mpsc::channel::<()>());
    let (reached_tx, go_rx) = (reached.0, std::sync::Mutex::new(wait_for_go.1));
    let rebuilding = tokio::spawn({
        let (widgets, pool, source) = (widgets.clone(), database.pool.clone(), source_for(&broker.bootstrap));
        let settings = consumer::RebuildSettings { swap_deadline_ms: 1_000, ..Default::default() };
        async move {
            let mut first_batch = true;
            rebuild(&*widgets, &pool, &source, &settings, move |_| {
                if std::mem::take(&mut first_batch) {
                    reached_tx.send(()).unwrap();
                    go_rx.lock().unwrap().recv().unwrap();
                }
            })
            .await
        }
    });
    reached.1.recv_timeout(PATIENCE).unwrap();
    mock.create_topic(&second, 2, 1).unwrap();
    for i in 0..10 {
        publish(&producer, &second, &widget_event(Uuid::now_v7(), 1, &format!("second {i}"))).await;
    }
    eventually(PATIENCE, "the live projection to apply the new topic", || async { stats.applied() == 310 })
        .await;
    wait_for_go.0.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), rebuilding)
        .await
        .expect("the rebuild finishes")
        .unwrap()
        .unwrap();

    // Assert: the rebuilt projection holds both topics, and the live runner goes on applying after the swap.
    assert_eq!(widgets.rows(&database.pool).await.len(), 310);
    publish(&producer, &second, &widget_event(Uuid::now_v7(), 1, "after the rebuild")).await;
    eventually(PATIENCE, "the live projection to go on", || async {
        widgets.rows(&database.pool).await.len() == 311
    })
    .await;
    println!(
        "Rebuilt from {} records; {} swap attempts missed their deadline",
        report.consumed, report.retried_swaps
    );
    stop.cancel();
    live.await.unwrap().unwrap();
}

/// A source on the broker at `bootstrap` that notices new topics within a second.
fn source_for(bootstrap: &str) -> consumer::Source {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("topic.metadata.refresh.interval.ms", "1000");
    config.into_source()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    external_kafka,
    ignore = "relies on the embedded broker keeping only the last 5 MiB of a partition"
)]
async fn records_deleted_before_they_were_applied_are_reported_and_the_consumer_goes_on_from_what_is_left() {
    // Arrange: a widget applied, then the runner stopped while 6 MiB arrive: the broker drops the oldest.
    let broker = TestBroker::start().await;
    let database = database().await;
    let topic = broker.create_topic("test-widgets", 1).await;
    let widgets = Arc::new(Widgets::create(&database.pool, &topic, "widgets").await);
    let producer: FutureProducer = broker.client_config().create().unwrap();
    publish(&producer, &topic, &widget_event(Uuid::now_v7(), 1, "before")).await;
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &broker.bootstrap, &stop);
    eventually(PATIENCE, "the first widget applied", || async { stats.applied() == 1 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let big_name = "x".repeat(100_000);
    for _ in 0..60 {
        publish(&producer, &topic, &widget_event(Uuid::now_v7(), 1, &big_name)).await;
    }
    let last = widget_event(Uuid::now_v7(), 1, "after");
    publish(&producer, &topic, &last).await;

    // Act
    let stop = CancellationToken::new();
    let (stats, _, running) = start_runner(&widgets, &database.pool, &broker.bootstrap, &stop);

    // Assert: the gap is reported, and what is left is applied.
    eventually(PATIENCE, "the last widget applied", || async {
        widgets.rows(&database.pool).await.iter().any(|(id, _, _)| *id == last.aggregate_id)
    })
    .await;
    assert_eq!(stats.truncations(), 1);
    assert_eq!(stats.resets(), 0, "the same log, shortened: not a replaced one");
    assert!(stats.applied() < 61, "the records dropped by the broker were not applied: {}", stats.applied());
    stop.cancel();
    running.await.unwrap().unwrap();
}
