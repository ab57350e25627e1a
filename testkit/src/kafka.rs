//! A Kafka-protocol broker for tests: librdkafka's mock cluster in the test process (real TCP ports, real
//! protocol) by default, or the broker at `KAFKA_BROKERS` when set, so the same tests run against real Kafka.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::{Header, Headers, OwnedHeaders},
    mocking::MockCluster,
    producer::{DefaultProducerContext, FutureProducer, FutureRecord},
};
use shop_events::topics;
use uuid::Uuid;

/// A broker for one test.
pub struct TestBroker {
    pub bootstrap: String,
    /// Prefixes the shop's topic and group names: empty on the test's own embedded broker, unique per test on a
    /// shared external one (pass it on as `KAFKA_TOPIC_PREFIX`).
    pub topic_prefix: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("bootstrap", &self.bootstrap)
            .field("embedded", &self.mock.is_some())
            .finish()
    }
}

impl TestBroker {
    /// The broker at `KAFKA_BROKERS` (with the shop's topics under a prefix of this test's own), or a new
    /// embedded mock cluster with the shop's topics (the mock cluster does not implement CreateTopics).
    pub async fn start() -> Self {
        crate::init_test_logging();
        match std::env::var("KAFKA_BROKERS") {
            Ok(bootstrap) if !bootstrap.is_empty() => {
                let topic_prefix = format!("test-{}.", Uuid::now_v7().simple());
                let broker = Self { bootstrap, topic_prefix, mock: None };
                let admin: AdminClient<DefaultClientContext> = broker.client_config().create().unwrap();
                let topics: Vec<String> = topics::ALL.iter().map(|spec| broker.topic(spec.name)).collect();
                let new: Vec<NewTopic<'_>> =
                    topics.iter().map(|topic| NewTopic::new(topic, 3, TopicReplication::Fixed(1))).collect();
                for result in admin.create_topics(&new, &AdminOptions::new()).await.unwrap() {
                    result.expect("Failed to create the shop's topics");
                }
                broker
            }
            _ => {
                let mock = MockCluster::new(1).expect("Failed to start the embedded Kafka mock cluster");
                for spec in topics::ALL {
                    mock.create_topic(spec.name, 3, 1).unwrap();
                }
                Self { bootstrap: mock.bootstrap_servers(), topic_prefix: String::new(), mock: Some(mock) }
            }
        }
    }

    /// The name on this broker of the shop's topic `topic`.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    /// A broker someone else runs (another process's embedded broker, say).
    pub fn at(bootstrap: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self { bootstrap: bootstrap.into(), topic_prefix: topic_prefix.into(), mock: None }
    }

    /// The embedded cluster, for tests that take the broker down; `None` against an external broker.
    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self.mock.as_ref()
    }

    /// A client configuration pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// A fresh, uniquely named topic.
    pub async fn create_topic(&self, prefix: &str, partitions: i32) -> String {
        let topic = format!("{prefix}-{}", Uuid::now_v7().simple());
        self.create_named_topic(&topic, partitions).await;
        topic
    }

    /// Creates `topic` as it is named. On the embedded broker, mind that a partition keeps only its last 5 MiB.
    pub async fn create_named_topic(&self, topic: &str, partitions: i32) {
        match &self.mock {
            Some(mock) => mock.create_topic(topic, partitions, 1).unwrap(),
            None => {
                let admin: AdminClient<DefaultClientContext> = self.client_config().create().unwrap();
                let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                for result in admin.create_topics(&[new], &AdminOptions::new()).await.unwrap() {
                    result.expect("Failed to create the test topic");
                }
            }
        }
    }

    /// Produces one record and waits for its acknowledgement.
    pub async fn produce(&self, topic: &str, key: &str, headers: &[(&str, String)], payload: &[u8]) {
        let producer: FutureProducer = self.client_config().create().unwrap();
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (name, value)| h.insert(Header { key: name, value: Some(value) }));
        producer
            .send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .expect("Failed to produce a test record");
    }

    /// Reads `topic` from the beginning (every partition, no consumer group) until `expected` records arrived or
    /// `timeout` passed. Records of one key share a partition, so each key's records come in stored order.
    pub async fn read_topic(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<ReadRecord> {
        self.read_until(topic, timeout, move |records| records.len() >= expected).await
    }

    /// Reads `topic` from the beginning until `done` says so or `timeout` passed.
    pub async fn read_until(
        &self,
        topic: &str,
        timeout: Duration,
        done: impl Fn(&[ReadRecord]) -> bool + Send + 'static,
    ) -> Vec<ReadRecord> {
        let (config, topic) = (self.client_config(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", format!("test-reader-{}", Uuid::now_v7()))
                .set("enable.auto.commit", "false")
                // Return records as soon as they are there, not after the default 500 ms wait.
                .set("fetch.wait.max.ms", "10")
                .create()
                .unwrap();
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
            let mut assignment = TopicPartitionList::new();
            for partition in metadata.topics()[0].partitions() {
                assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning).unwrap();
            }
            consumer.assign(&assignment).unwrap();

            let deadline = std::time::Instant::now() + timeout;
            let mut records = Vec::new();
            while !done(&records) && std::time::Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    records.push(ReadRecord::from_message(&message));
                }
            }
            records
        })
        .await
        .unwrap()
    }
}

/// Size of the filler records that push the embedded broker's oldest records out.
const FILLER_BYTES: usize = 512 * 1024;

impl TestBroker {
    /// Makes every partition of `topic` (its name on this broker) lose its first records, as retention or
    /// `DeleteRecords` does, and returns each partition's first offset afterwards (all above 0).
    ///
    /// On a real broker: `DeleteRecords` up to where each partition ends. The embedded broker implements no
    /// `DeleteRecords` (it answers UNSUPPORTED_FEATURE), but keeps only the last 5 MiB of each partition: records of
    /// filler (512 KiB of `x`, no key, no headers: consumers pass them over as records without a type) are
    /// produced to each partition until it dropped its oldest.
    pub async fn delete_first_records(&self, topic: &str) -> BTreeMap<i32, i64> {
        let partitions: Vec<i32> = self.watermarks(topic).await.into_keys().collect();
        if self.mock.is_none() {
            let ends = self.watermarks(topic).await;
            let mut offsets = TopicPartitionList::new();
            for (partition, (_, high)) in &ends {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*high)).unwrap();
            }
            let admin: AdminClient<DefaultClientContext> = self.client_config().create().unwrap();
            for element in admin.delete_records(&offsets, &AdminOptions::new()).await.unwrap().elements() {
                element.error().expect("DeleteRecords on the test broker");
            }
        } else {
            let producer: FutureProducer = self.client_config().create().unwrap();
            let filler = vec![b'x'; FILLER_BYTES];
            for partition in partitions {
                while self.watermarks(topic).await[&partition].0 == 0 {
                    producer
                        .send(
                            FutureRecord::<(), _>::to(topic).partition(partition).payload(&filler),
                            Duration::from_secs(10),
                        )
                        .await
                        .map_err(|(error, _)| error)
                        .expect("Failed to produce filler");
                }
            }
        }
        self.watermarks(topic).await.into_iter().map(|(partition, (low, _))| (partition, low)).collect()
    }

    /// The (low, high) watermarks of every partition of `topic` (its name on this broker).
    pub async fn watermarks(&self, topic: &str) -> BTreeMap<i32, (i64, i64)> {
        let (config, topic) = (self.client_config(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create().unwrap();
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
            metadata.topics()[0]
                .partitions()
                .iter()
                .map(|partition| {
                    let marks =
                        consumer.fetch_watermarks(&topic, partition.id(), Duration::from_secs(10)).unwrap();
                    (partition.id(), marks)
                })
                .collect()
        })
        .await
        .unwrap()
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

impl ReadRecord {
    fn from_message(message: &impl Message) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            payload: message.payload().unwrap_or_default().to_vec(),
        }
    }

    /// The payload as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("a JSON payload")
    }

    /// The `ce_aggregateversion` header.
    pub fn version(&self) -> i64 {
        self.headers["ce_aggregateversion"].parse().expect("a numeric aggregate version")
    }
}
