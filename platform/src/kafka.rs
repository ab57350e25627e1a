//! Kafka client settings shared by every process that talks to Kafka, the one function that turns them into an
//! rdkafka [`ClientConfig`], [`TracingContext`], the client context every producer and consumer of the shop
//! uses, and [`partition_ends`], where a topic's partitions end.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use rdkafka::{
    ClientConfig, ClientContext,
    config::RDKafkaLogLevel,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::{KafkaError, RDKafkaErrorCode},
};

use crate::redact;

/// One librdkafka property given by the operator, `key=value`.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOption {
    pub key: String,
    pub value: String,
}

impl FromStr for KafkaOption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A mistyped credential (`sasl.password:x`, `=x`) must not come back whole in the error either.
        let shown =
            || if redact::is_secret_name(s) || s.trim_start().starts_with('=') { redact::MASK } else { s };
        let (key, value) =
            s.split_once('=').ok_or_else(|| format!("expected key=value, got {:?}", shown()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("empty key in {:?}", shown()));
        }
        Ok(Self { key: key.to_owned(), value: value.trim().to_owned() })
    }
}

impl fmt::Debug for KafkaOption {
    // Credentials (sasl.password, ssl.key.pem, sasl.oauthbearer.config, …) never reach a log line: the shared
    // rule decides, and a value that is a URL loses its userinfo password and secret parameters as well.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, redact::url(redact::option(&self.key, &self.value)))
    }
}

/// The brokers of a local run.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";

/// Where Kafka is, and any librdkafka properties to set on every client.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma-separated `host:port`.
    #[arg(long, env = "KAFKA_BROKERS", default_value = DEFAULT_KAFKA_BROKERS)]
    pub kafka_brokers: String,
    /// librdkafka properties applied last, over the process's own (for example
    /// `security.protocol=SASL_SSL,compression.type=lz4`); comma-separated `key=value`.
    #[arg(long = "kafka-option", env = "KAFKA_OPTIONS", value_delimiter = ',')]
    pub kafka_options: Vec<KafkaOption>,
    /// Prepended to the name of every topic and consumer group, so several environments can share one cluster
    /// (for example `staging.`).
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    pub kafka_topic_prefix: String,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self::new(DEFAULT_KAFKA_BROKERS)
    }
}

impl KafkaSettings {
    /// Settings for the brokers at `brokers`, with no overrides.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self { kafka_brokers: brokers.into(), kafka_options: Vec::new(), kafka_topic_prefix: String::new() }
    }

    /// The name of `topic` on the cluster (with the prefix).
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.kafka_topic_prefix)
    }

    /// The client configuration: bootstrap servers, then `defaults` (what this kind of client needs), then the
    /// operator's overrides, which win.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.kafka_brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for option in &self.kafka_options {
            config.set(&option.key, &option.value);
        }
        config
    }
}

/// Where each partition of `topic` (as named without the prefix) ends now: the offset its next record will take.
/// Fails when the topic does not exist.
pub async fn partition_ends(settings: &KafkaSettings, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let (config, topic) = (settings.client_config(&[]), settings.topic(topic));
    // Metadata calls block; keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let partitions =
            metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()).collect::<Vec<_>>();
        anyhow::ensure!(
            !partitions.is_empty(),
            "the topic {topic} does not exist (the relay creates it at start)"
        );
        partitions
            .into_iter()
            .map(|partition| {
                let (_, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
                Ok((partition, high))
            })
            .collect()
    })
    .await?
}

/// A client context that sends librdkafka's logs and client-level errors (brokers down, authentication
/// failures) to `tracing`, where operators look.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // The relay sets this property on purpose (see its producer settings); saying so at every start helps no one.
        let level = if facility == "CONFWARN" && message.contains("enable.gapless.guarantee") {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A consumer that asked for end-of-partition events (a rebuild does, to know where it is) also hears of
        // them here; reaching the end of a partition is news, not an error.
        if matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::debug!(target: "librdkafka", reason, "Reached the end of a partition.");
            return;
        }
        // Transport errors repeat while a broker is away; they are expected and retried, so WARN, not ERROR.
        tracing::warn!(target: "librdkafka", reason, error.message = %error, "Kafka client error.");
    }
}

impl ConsumerContext for TracingContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_defaults() {
        let settings = KafkaSettings {
            kafka_brokers: "kafka:9092".into(),
            kafka_options: vec!["linger.ms=20".parse().unwrap()],
            kafka_topic_prefix: String::new(),
        };

        let config = settings.client_config(&[("linger.ms", "5"), ("acks", "all")]);

        assert_eq!(config.get("bootstrap.servers"), Some("kafka:9092"));
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn options_parse_as_key_value_and_hide_secrets() {
        let option: KafkaOption = " sasl.password = hunter2 ".parse().unwrap();

        assert_eq!((option.key.as_str(), option.value.as_str()), ("sasl.password", "hunter2"));
        assert_eq!(format!("{option:?}"), "sasl.password=********");
        assert!("no-equals-sign".parse::<KafkaOption>().is_err());
        let mistyped = "sasl.password:hunter2".parse::<KafkaOption>().unwrap_err();
        assert!(!mistyped.contains("hunter2"), "{mistyped}");
        assert!(!"=hunter2".parse::<KafkaOption>().unwrap_err().contains("hunter2"));
    }

    #[test]
    fn every_kind_of_kafka_credential_is_hidden_when_settings_are_logged() {
        let planted = [
            "sasl.password=planted-1",
            "ssl.key.pem=-----BEGIN PRIVATE KEY-----planted-2",
            "ssl.key.password=planted-3",
            "sasl.oauthbearer.config=principal=shop clientSecret=planted-4",
            "sasl.oauthbearer.client.secret=planted-5",
            "ssl.keystore.password=planted-6",
            "sasl.oauthbearer.token.endpoint.url=https://idp/token?client_secret=planted-7",
            "schema.registry.url=https://user:planted-8@registry",
        ];
        let settings = KafkaSettings {
            kafka_options: planted.iter().map(|option| option.parse().unwrap()).collect(),
            ..KafkaSettings::new("kafka:9092")
        };

        let logged = format!("{settings:?}");

        for i in 1..=planted.len() {
            assert!(!logged.contains(&format!("planted-{i}")), "planted-{i} in {logged}");
        }
        assert!(logged.contains("sasl.oauthbearer.config=********"), "{logged}");
    }
}
