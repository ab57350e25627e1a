//! Replay: rebuilding the order service's projection of accounts and products from a topic of entity events.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use shop_events::{
    Envelope,
    account::{Account, AccountCreated},
    catalog::{Product, ProductCreated, ProductUpdated},
    envelope::now,
    topics,
};
use shop_order::projection::DirectoryProjection;
use shop_platform::kafka::KafkaSettings;
use shop_projection::{RebuildReport, Record, Source};
use shop_testkit::{TestDatabase, kafka::TestBroker};
use uuid::Uuid;

use crate::{
    cpu, produce,
    relay::ROUNDS,
    stats::{median_run, per_second},
};

#[derive(Debug)]
pub struct Replay {
    pub events: usize,
    pub per_second: f64,
    pub applied: u64,
    pub ignored: u64,
    /// A bare consumer reading the same topics from their beginning to their end, in the same run.
    pub bare_consumer_per_second: f64,
    /// The projection applying the same records alone, nothing read from Kafka: decoded and written in batches
    /// of the rebuild's size, positions included, in one transaction per batch.
    pub apply_alone_per_second: f64,
    /// The same, each batch split into two transactions side by side, as the rebuild applies it.
    pub apply_side_by_side_per_second: f64,
    /// Cores the whole machine kept busy during each way.
    pub busy_cores: BusyCores,
    /// The rebuild's rate over the bare consumer's, round by round (each way's figures above are its median run).
    pub ratios: Vec<f64>,
}

/// Cores busy on the whole machine (every process, the kernel included) during each way.
#[derive(Debug, Clone, Copy)]
pub struct BusyCores {
    pub bare_consumer: f64,
    pub apply_alone: f64,
    pub apply_side_by_side: f64,
    pub rebuild: f64,
}

/// Records per batch when applying alone: the rebuild's batch.
const APPLY_BATCH: usize = 5_000;

/// How the records applied alone are split into transactions.
#[derive(Debug, Clone, Copy)]
enum Lanes {
    /// One transaction per batch.
    One,
    /// Each batch in two transactions side by side, one per topic (accounts, products), as the rebuild splits a
    /// batch by partition into two lanes.
    PerTopic,
}

/// Publishes `events` entity events (half account creations, half product creations and updates, five versions
/// per product), then rebuilds the order projection from them and measures the rebuild.
pub async fn replay(broker: &TestBroker, events: usize) -> anyhow::Result<Replay> {
    // Topics of this run's own, with partitions enough to hold every event: the embedded broker keeps only the
    // last 5 MiB of each partition (about 10 000 of these events).
    let topic_prefix = format!("{}bench-replay-{}.", broker.topic_prefix, Uuid::now_v7().simple());
    let partitions = (events / 5_000).max(1) as i32;
    for topic in [topics::ACCOUNTS, topics::PRODUCTS] {
        broker.create_named_topic(&format!("{topic_prefix}{topic}"), partitions).await;
    }
    let producer: FutureProducer = broker.client_config().set("linger.ms", "20").create()?;
    let mut envelopes = Vec::with_capacity(events);
    for _ in 0..events / 2 {
        let account = Account {
            id: Uuid::now_v7(),
            name: "A customer".into(),
            version: 1,
            created_at: now(),
            owner: None,
        };
        envelopes.push(Envelope::new(&AccountCreated { account }, None));
    }
    for _ in 0..events / 10 {
        let id = Uuid::now_v7();
        for version in 1..=5 {
            let product = Product {
                id,
                name: format!("Product v{version}"),
                description: "A product that changes.".into(),
                price_cents: 100 * version,
                stock: None,
                version,
                created_at: now(),
                updated_at: now(),
            };
            envelopes.push(if version == 1 {
                Envelope::new(&ProductCreated { product }, None)
            } else {
                Envelope::new(&ProductUpdated { product }, None)
            });
        }
    }
    publish(&producer, &topic_prefix, &envelopes).await?;
    let source = Source::from_settings(&KafkaSettings {
        kafka_topic_prefix: topic_prefix.clone(),
        ..KafkaSettings::new(broker.bootstrap.clone())
    });

    // The four ways in turn, ROUNDS times: the machine's speed drifts within minutes, and a ratio of ways measured
    // side by side travels; each way's median run is reported.
    let (mut bare_runs, mut alone_runs, mut side_by_side_runs, mut rebuild_runs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ratios, mut report) = (Vec::new(), RebuildReport::default());
    for _ in 0..ROUNDS {
        let (bare, bare_busy) = cpu::metered(bare_consumer(broker, &topic_prefix, events)).await;
        let bare = bare?;
        alone_runs.push(apply_alone(&envelopes, Lanes::One).await?);
        side_by_side_runs.push(apply_alone(&envelopes, Lanes::PerTopic).await?);
        let rebuilt;
        (report, rebuilt) = rebuild(&source).await?;
        ratios.push(rebuilt.0 / bare.max(f64::EPSILON));
        bare_runs.push((bare, bare_busy));
        rebuild_runs.push(rebuilt);
    }
    let (bare_consumer_per_second, bare_busy) = median_run(bare_runs);
    let (apply_alone_per_second, apply_busy) = median_run(alone_runs);
    let (apply_side_by_side_per_second, side_by_side_busy) = median_run(side_by_side_runs);
    let (per_second, rebuild_busy) = median_run(rebuild_runs);
    Ok(Replay {
        events: report.consumed as usize,
        per_second,
        applied: report.applied,
        ignored: report.ignored,
        bare_consumer_per_second,
        apply_alone_per_second,
        apply_side_by_side_per_second,
        busy_cores: BusyCores {
            bare_consumer: bare_busy,
            apply_alone: apply_busy,
            apply_side_by_side: side_by_side_busy,
            rebuild: rebuild_busy,
        },
        ratios,
    })
}

/// A fresh database with the order service's schema, and a pool on it as the service connects; the database lives
/// as long as the [`TestDatabase`] returned.
async fn order_database() -> anyhow::Result<(TestDatabase, sqlx::PgPool)> {
    let database = TestDatabase::create().await;
    let settings = shop_order::config::Settings {
        database_url: database.url.parse().map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    let pool = shop_order::database::connect(&settings).await?;
    Ok((database, pool))
}

/// Rebuilds a fresh order projection from `source`'s topics. Returns what the rebuild did, with its events/s and
/// the cores busy meanwhile.
async fn rebuild(source: &Source) -> anyhow::Result<(RebuildReport, (f64, f64))> {
    let (_database, pool) = order_database().await?;
    let started = Instant::now();
    let (report, busy) = cpu::metered(shop_projection::rebuild(
        &DirectoryProjection::live(),
        &pool,
        source,
        &Default::default(),
        |_| {},
    ))
    .await;
    let report = report?;
    let rate = per_second(report.consumed as usize, started.elapsed());
    Ok((report, (rate, busy)))
}

/// Applies `envelopes`, as records of their topics (one partition each, named as the rebuild names them), to a
/// fresh order projection in batches of [`APPLY_BATCH`], as the rebuild would once it has read them, each batch in
/// one transaction or split into `lanes`. Returns events/s, and the cores busy while it applied (the database's
/// creation left out).
async fn apply_alone(envelopes: &[Envelope], lanes: Lanes) -> anyhow::Result<(f64, f64)> {
    let (_database, pool) = order_database().await?;
    let records = envelopes
        .iter()
        .enumerate()
        .map(|(offset, envelope)| Record::of_event(&envelope.topic, 0, offset as i64, envelope));
    let lanes: Vec<Arc<Vec<Record>>> = match lanes {
        Lanes::One => vec![Arc::new(records.collect())],
        Lanes::PerTopic => {
            let (accounts, products) = records.partition(|record| record.topic == topics::ACCOUNTS);
            vec![Arc::new(accounts), Arc::new(products)]
        }
    };
    let (events, per_lane) = (envelopes.len(), APPLY_BATCH / lanes.len());
    let projection = Arc::new(DirectoryProjection::live());
    let started = Instant::now();
    let (applied, busy) = cpu::metered(async {
        let mut applied = 0;
        for start in (0..).step_by(per_lane).take_while(|start| lanes.iter().any(|lane| *start < lane.len()))
        {
            let applying = lanes.iter().filter(|lane| start < lane.len()).map(|lane| {
                let (pool, projection, lane) = (pool.clone(), projection.clone(), lane.clone());
                tokio::spawn(async move {
                    let batch = &lane[start..lane.len().min(start + per_lane)];
                    shop_projection::apply_batch(&pool, &*projection, batch, Default::default()).await
                })
            });
            for summary in futures::future::try_join_all(applying).await? {
                applied += summary?.applied;
            }
        }
        anyhow::Ok(applied)
    })
    .await;
    let (applied, per_second) = (applied?, per_second(events, started.elapsed()));
    anyhow::ensure!(applied == events as u64, "applied {applied} of {events} records alone");
    Ok((per_second, busy))
}

/// Reads every record of the replay's topics once with a bare consumer (the projection's consumer settings, no
/// group, every partition assigned from its beginning), touching each record's payload and headers but applying
/// nothing: how fast the topics can be read here. Returns records/s.
async fn bare_consumer(broker: &TestBroker, topic_prefix: &str, events: usize) -> anyhow::Result<f64> {
    let source = Source::from_settings(&KafkaSettings {
        kafka_topic_prefix: topic_prefix.to_owned(),
        ..KafkaSettings::new(broker.bootstrap.clone())
    });
    let mut config = source.config.clone();
    config.set("group.id", format!("{topic_prefix}bare")).set("enable.auto.commit", "false");
    let consumer: StreamConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in [topics::ACCOUNTS, topics::PRODUCTS] {
        let topic = source.topic(topic);
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning)?;
        }
    }
    let started = Instant::now();
    consumer.assign(&assignment)?;
    let (mut read, mut bytes) = (0, 0);
    while read < events {
        let message = consumer.recv().await?;
        bytes +=
            message.payload().map_or(0, <[u8]>::len) + message.headers().map_or(0, |headers| headers.count());
        read += 1;
    }
    std::hint::black_box(bytes);
    Ok(per_second(read, started.elapsed()))
}

async fn publish(
    producer: &FutureProducer,
    topic_prefix: &str,
    envelopes: &[Envelope],
) -> anyhow::Result<()> {
    let mut records = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let topic = format!("{topic_prefix}{}", envelope.topic);
        let headers =
            envelope.metadata().headers().iter().fold(OwnedHeaders::new(), |h, (name, value)| {
                h.insert(Header { key: name, value: Some(value) })
            });
        records.push((
            topic,
            envelope.aggregate_id.to_string(),
            serde_json::to_vec(&envelope.payload)?,
            headers,
        ));
    }
    produce::send_all(
        producer,
        records.iter().map(|(topic, key, payload, headers)| {
            FutureRecord::to(topic).key(key).payload(payload).headers(headers.clone())
        }),
    )
    .await
}
