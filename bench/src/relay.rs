//! The relay: throughput against a bare producer, and commit-to-Kafka latency with and without commit
//! notifications.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::join_all;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    producer::Producer as _,
};
use shop_events::{Envelope, envelope::now};
use shop_outbox as outbox;
use shop_platform::kafka::KafkaSettings;
use shop_relay::{kafka, leases::Leases, store};
use shop_testkit::{TestDatabase, kafka::TestBroker};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    children::ChildProcess,
    cpu, produce,
    stats::{Latencies, median_run, per_second},
};

/// Relay throughput next to a bare producer sending the same records, idempotent (the relay's) and transactional
/// (what broker-side fencing of a previous shard owner would take).
#[derive(Debug)]
pub struct Throughput {
    pub events: usize,
    pub baseline_per_second: f64,
    /// The same records through a transactional producer, one transaction per relay batch.
    pub transactional_per_second: f64,
    pub relay_per_second: f64,
    pub relay_peak_rss_mib: Option<f64>,
    /// The relay's database work alone, nothing sent: its read and its bookkeeping, batch after batch.
    pub database_per_second: f64,
    /// Cores the whole machine kept busy during the bare producer's run, the database work's, and the relay's.
    pub busy_cores: BusyCores,
    /// The relay's time over the bare producer's, in each round.
    pub ratios: Vec<f64>,
}

/// Cores busy on the whole machine (every process, the kernel included) during each way.
#[derive(Debug, Clone, Copy)]
pub struct BusyCores {
    pub baseline: f64,
    pub database: f64,
    pub relay: f64,
}

/// The relay's default batch.
const RELAY_BATCH: usize = 1_000;
/// How many times the ways of a throughput section are measured, in turn: the bare producer and the relay here, the
/// replay's four ways in [`crate::replay`].
pub(crate) const ROUNDS: usize = 3;
/// Records per transaction in the transactional baseline: the relay's default batch.
const TRANSACTION: usize = RELAY_BATCH;

/// Commit-to-Kafka latency, measured at a consumer, with commit notifications and with the fallback poll only.
#[derive(Debug)]
pub struct Latency {
    pub target_per_second: u32,
    pub duration: Duration,
    pub with_notify: (Latencies, f64),
    pub poll_only: (Latencies, f64),
    pub relay_peak_rss_mib: Option<f64>,
}

/// Writes `versions` events for each of `aggregates` aggregates in one statement, interleaved (version 1 of every
/// aggregate, then version 2, …) like a busy system would, with ~200-byte payloads.
async fn prefill(pool: &PgPool, topic: &str, aggregates: usize, versions: i64) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = (0..aggregates).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic, payload,
                             occurred_at)
         SELECT gen_random_uuid(), 'widget', a.id, v, 'shop.widget.changed.v1', $2,
                jsonb_build_object('id', a.id, 'version', v, 'name', 'widget ' || v, 'padding', repeat('x', 150)),
                now()
         FROM unnest($1::uuid[]) AS a (id), generate_series(1, $3::bigint) AS v
         ORDER BY v, a.id",
    )
    .bind(&ids)
    .bind(topic)
    .bind(versions)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the relay has work left. Cheap (one index probe), since it is asked every few milliseconds while the
/// relay runs on the same cores.
async fn drained(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)")
        .fetch_one(pool)
        .await?)
}

/// The relay's settings: this outbox, this broker, default tuning (a 1 s fallback poll, batches of 1 000).
fn relay_env(database: &TestDatabase, broker: &TestBroker) -> Vec<(&'static str, String)> {
    vec![
        ("RELAY_DATABASE_URLS", database.url.clone()),
        ("KAFKA_BROKERS", broker.bootstrap.clone()),
        ("RELAY_METRICS_ADDR", "127.0.0.1:0".to_owned()),
    ]
}

/// Drains `aggregates × versions` prefilled events with the relay, and sends the same records with a bare
/// producer (same configuration, same keys, payloads and headers) for the baseline.
pub async fn throughput(broker: &TestBroker, aggregates: usize, versions: i64) -> anyhow::Result<Throughput> {
    let database = TestDatabase::create().await;
    outbox::migrate(&database.pool).await?;
    let (relay_topic, baseline_topic) =
        (broker.create_topic("bench-relay", 6).await, broker.create_topic("bench-baseline", 6).await);
    prefill(&database.pool, &relay_topic, aggregates, versions).await?;
    let events = aggregates * versions as usize;

    // Baseline: the rows, already in memory, through the relay's own producer and record format; the producer is
    // connected (and has its idempotent producer id) before the clock starts.
    let shards: Vec<i16> = (0..shop_outbox::SHARD_COUNT).collect();
    let rows = store::unpublished(&database.pool, &shards, events as i64).await?;
    let keys: Vec<String> = rows.iter().map(|row| row.aggregate_id.to_string()).collect();
    let producer = kafka::create_producer(&KafkaSettings::new(broker.bootstrap.clone()))?;
    producer
        .send(kafka::record(&rows[0], &baseline_topic, &keys[0], None), Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)?;
    let transactional_per_second = transactional(broker, &rows, &keys).await?;
    let (database_per_second, database_busy) = cpu::metered(database_alone(&database.pool)).await;
    let database_per_second = database_per_second?;

    // The relay, warmed up the same way (it has published one event), from the commit of the prefill to the
    // moment the outbox is empty.
    let relay_database = TestDatabase::create().await;
    outbox::migrate(&relay_database.pool).await?;
    let relay = ChildProcess::start("child-relay", &relay_env(&relay_database, broker))?;
    prefill(&relay_database.pool, &relay_topic, 1, 1).await?;
    while !drained(&relay_database.pool).await? {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The bare producer and the relay in turn, ROUNDS times: the machine's speed drifts within minutes, and a
    // ratio of two ways measured side by side travels; each way's median is reported.
    let (mut baseline_runs, mut relay_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (sent, baseline_busy) = cpu::metered(produce::send_all(
            &producer,
            rows.iter().zip(&keys).map(|(row, key)| kafka::record(row, &baseline_topic, key, None)),
        ))
        .await;
        sent?;
        let baseline = (per_second(events, started.elapsed()), baseline_busy);

        prefill(&relay_database.pool, &relay_topic, aggregates, versions).await?;
        let started = Instant::now();
        let (drained, relay_busy) = cpu::metered(async {
            while !drained(&relay_database.pool).await? {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::Ok(())
        })
        .await;
        drained?;
        let relay = (per_second(events, started.elapsed()), relay_busy);
        ratios.push(baseline.0 / relay.0);
        baseline_runs.push(baseline);
        relay_runs.push(relay);
    }
    drop(rows);
    let relay_peak_rss_mib = relay.peak_rss_mib();
    relay.stop()?;
    let ((baseline_per_second, baseline_busy), (relay_per_second, relay_busy)) =
        (median_run(baseline_runs), median_run(relay_runs));

    Ok(Throughput {
        events,
        baseline_per_second,
        transactional_per_second,
        relay_per_second,
        relay_peak_rss_mib,
        database_per_second,
        busy_cores: BusyCores { baseline: baseline_busy, database: database_busy, relay: relay_busy },
        ratios,
    })
}

/// The relay's database work on the prefilled outbox of `pool`, with nothing sent: batches of the relay's default
/// size read with its statement and recorded published with its bookkeeping (under leases taken as a relay would),
/// one after the other until none is left. Returns events/s.
async fn database_alone(pool: &PgPool) -> anyhow::Result<f64> {
    let leases = Leases::new(pool.clone(), "bench".to_owned(), Uuid::now_v7(), Duration::from_secs(60));
    let assignment = leases.refresh().await?;
    let (shards, held) = (assignment.usable_shards(), assignment.leases());
    let (started, mut events) = (Instant::now(), 0);
    loop {
        let rows = store::unpublished(pool, &shards, RELAY_BATCH as i64).await?;
        if rows.is_empty() {
            break;
        }
        events += rows.len();
        let batch = store::BatchRecord {
            delivered: rows.iter().map(store::Published::of).collect(),
            ..Default::default()
        };
        store::record_batch(pool, leases.instance_id(), held, &batch, false).await?;
    }
    Ok(per_second(events, started.elapsed()))
}

/// The same records through a transactional producer (the relay's settings plus a `transactional.id`), committing
/// every [`TRANSACTION`] records: the cost of fencing a previous owner at the broker instead of the relay's barrier.
/// The embedded broker commits a transaction without writing markers, so on real Kafka the gap is wider.
async fn transactional(
    broker: &TestBroker,
    rows: &[store::OutboxRow],
    keys: &[String],
) -> anyhow::Result<f64> {
    let topic = broker.create_topic("bench-transactional", 6).await;
    let mut settings = KafkaSettings::new(broker.bootstrap.clone());
    settings
        .kafka_options
        .push(format!("transactional.id=bench-{}", Uuid::now_v7()).parse().map_err(anyhow::Error::msg)?);
    let producer = kafka::create_producer(&settings)?;
    let timeout = Duration::from_secs(30);
    let blocking =
        |producer: kafka::Producer,
         step: fn(&kafka::Producer, Duration) -> rdkafka::error::KafkaResult<()>| {
            tokio::task::spawn_blocking(move || step(&producer, timeout))
        };
    blocking(producer.clone(), |p, t| p.init_transactions(t)).await??;
    let started = Instant::now();
    for (rows, keys) in rows.chunks(TRANSACTION).zip(keys.chunks(TRANSACTION)) {
        producer.begin_transaction()?;
        produce::send_all(
            &producer,
            rows.iter().zip(keys).map(|(row, key)| kafka::record(row, &topic, key, None)),
        )
        .await?;
        blocking(producer.clone(), |p, t| p.commit_transaction(t)).await??;
    }
    let per_second = per_second(rows.len(), started.elapsed());
    kafka::retire(producer).await;
    Ok(per_second)
}

/// Commits events one per transaction at `rate` per second for `duration`, each the next version of one of 100
/// aggregates, and measures from each commit to the moment a consumer receives the record.
async fn latency_run(
    broker: &TestBroker,
    rate: u32,
    duration: Duration,
    notify: bool,
) -> anyhow::Result<(Latencies, f64, Option<f64>)> {
    let database = TestDatabase::create().await;
    outbox::migrate(&database.pool).await?;
    if !notify {
        sqlx::query("ALTER TABLE outbox DISABLE TRIGGER outbox_notify").execute(&database.pool).await?;
    }
    let topic = broker.create_topic("bench-latency", 6).await;
    let relay = ChildProcess::start("child-relay", &relay_env(&database, broker))?;

    // The consumer, already polling before the first commit.
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (config, topic, received, stop) =
            (broker.client_config(), topic.clone(), received.clone(), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", format!("bench-{}", Uuid::now_v7()))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "5")
                .create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut assignment = TopicPartitionList::new();
            for partition in metadata.topics()[0].partitions() {
                assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(10)) {
                    let at = Instant::now();
                    let id = message
                        .headers()
                        .and_then(|headers| headers.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
                        .map(|value| String::from_utf8_lossy(value).into_owned());
                    if let Some(id) = id {
                        received.lock().unwrap().insert(id, at);
                    }
                }
            }
            Ok(())
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Writers: four of them, each owning 25 aggregates (versions of one aggregate are written in order).
    const WRITERS: u32 = 4;
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let writers = (0..WRITERS).map(|_| {
        let (pool, topic, committed) = (database.pool.clone(), topic.clone(), committed.clone());
        tokio::spawn(async move {
            let aggregates: Vec<Uuid> = (0..25).map(|_| Uuid::now_v7()).collect();
            let mut versions = vec![0_i64; aggregates.len()];
            let mut ticks =
                tokio::time::interval(Duration::from_secs_f64(f64::from(WRITERS) / f64::from(rate)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next = 0;
            while started.elapsed() < duration {
                ticks.tick().await;
                versions[next] += 1;
                let event = Envelope {
                    event_id: Uuid::now_v7(),
                    aggregate_type: "widget".into(),
                    aggregate_id: aggregates[next],
                    aggregate_version: versions[next],
                    event_type: "shop.widget.changed.v1".into(),
                    topic: topic.clone(),
                    payload: serde_json::json!({ "version": versions[next], "padding": "x".repeat(150) }),
                    occurred_at: now(),
                    trace: None,
                };
                let mut transaction = pool.begin().await?;
                outbox::append(&mut transaction, &event).await?;
                transaction.commit().await?;
                committed.lock().unwrap().insert(event.event_id.to_string(), Instant::now());
                next = (next + 1) % aggregates.len();
            }
            anyhow::Ok(())
        })
    });
    for writer in join_all(writers).await {
        writer??;
    }
    let written = committed.lock().unwrap().len();
    let achieved = per_second(written, started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    consumer.join().expect("the consumer thread")?;
    let peak = relay.peak_rss_mib();
    relay.stop()?;

    let (committed, received) = (committed.lock().unwrap(), received.lock().unwrap());
    let samples: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| received.get(id).map(|received| received.saturating_duration_since(*at)))
        .collect();
    anyhow::ensure!(samples.len() == written, "{} of {written} events arrived", samples.len());
    Ok((Latencies::of(samples), achieved, peak))
}

/// Latency at a steady `rate` for `duration`: with commit notifications, then with the fallback poll only.
pub async fn latency(broker: &TestBroker, rate: u32, duration: Duration) -> anyhow::Result<Latency> {
    let (notify, notify_rate, peak_notify) = latency_run(broker, rate, duration, true).await?;
    let (poll, poll_rate, peak_poll) = latency_run(broker, rate, duration, false).await?;
    Ok(Latency {
        target_per_second: rate,
        duration,
        with_notify: (notify, notify_rate),
        poll_only: (poll, poll_rate),
        relay_peak_rss_mib: crate::stats::max(peak_notify, peak_poll),
    })
}
