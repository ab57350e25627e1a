//! What every [`ProjectionRunner`](crate::ProjectionRunner) of the process consumes, in the process's registry
//! ([`shop_platform::metrics`]):
//!
//! - `shop_consumer_records_total{consumer,topic,outcome}`: records consumed, by what became of them: `applied`
//!   (the projection changed), `ignored` (nothing to do: an older or repeated version the version guard turned
//!   away, an event the projection does not use, or a record Kafka delivered again after it was applied) or
//!   `skipped` (undecodable, or breaking its event's invariants, or failing again and again: kept in
//!   `projection_skipped` and passed over).
//! - `shop_consumer_lag_records{consumer,topic,partition}`: per assigned partition, the high-water mark minus the
//!   offset of the next record the runner will apply — 0 once it has applied everything the partition holds. The
//!   high-water mark comes with librdkafka's statistics, which the runner already receives every 2 s, so the lag
//!   costs no request of its own; it is as fresh as the last statistics. A partition the consumer no longer holds
//!   leaves the gauge (another member of the group reports it).
//!
//! `consumer` is the consumer group and `topic` the topic as they are named on the cluster — the names
//! `kafka-consumer-groups.sh --describe` shows — so with a `KAFKA_TOPIC_PREFIX` they carry it. Both are fixed by
//! the deployment, never by a record.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};
use rdkafka::Statistics;
use shop_platform::metrics::{intern, register};

use crate::offsets::{Partition, TopicSummaries};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    consumer: &'static str,
    topic: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    consumer: &'static str,
    topic: &'static str,
    partition: i32,
}

#[derive(Debug)]
struct ConsumerFamilies {
    records: Family<RecordLabels, Counter>,
    lag: Family<LagLabels, Gauge>,
}

static FAMILIES: LazyLock<ConsumerFamilies> = LazyLock::new(|| ConsumerFamilies {
    records: register(
        "shop_consumer_records",
        "Records the projection consumers consumed, by what became of them (applied, ignored, skipped)",
        Family::default(),
    ),
    lag: register(
        "shop_consumer_lag_records",
        "Records in a partition that its consumer has not applied yet: the high-water mark minus its next offset",
        Family::default(),
    ),
});

/// The metrics of one runner's consumer.
#[derive(Debug)]
pub(crate) struct ConsumerMeter {
    consumer: &'static str,
    topic_prefix: String,
    /// Per assigned partition, the offset of the next record to apply.
    next: Mutex<Positions>,
}

/// Offsets by topic (as on the cluster) and partition.
type Positions = HashMap<&'static str, HashMap<i32, i64>>;

impl ConsumerMeter {
    /// The meter of consumer group `group`, reading topics named with `topic_prefix` on the cluster.
    pub(crate) fn new(group: &str, topic_prefix: &str) -> Self {
        LazyLock::force(&FAMILIES);
        Self { consumer: intern(group), topic_prefix: topic_prefix.to_owned(), next: Mutex::default() }
    }

    fn cluster_topic(&self, topic: &str) -> &'static str {
        intern(&format!("{}{topic}", self.topic_prefix))
    }

    /// Counts what became of a batch's records.
    pub(crate) fn count(&self, summaries: &TopicSummaries) {
        for (topic, summary) in summaries.iter() {
            let topic = self.cluster_topic(topic);
            let outcomes = [
                ("applied", summary.applied),
                ("ignored", summary.ignored + summary.already_applied),
                ("skipped", summary.skipped + summary.dead_lettered),
            ];
            for (outcome, records) in outcomes {
                let counter =
                    FAMILIES.records.get_or_create(&RecordLabels { consumer: self.consumer, topic, outcome });
                counter.inc_by(records);
            }
        }
    }

    /// Takes the runner's positions (topics as the projection names them) after a batch or a rebalance; the
    /// partitions it no longer holds leave the lag gauge.
    pub(crate) fn track(&self, next: &HashMap<Partition, i64>) {
        let mut tracked: Positions = HashMap::new();
        for ((topic, partition), offset) in next {
            tracked.entry(self.cluster_topic(topic)).or_default().insert(*partition, *offset);
        }
        let mut positions = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (topic, partitions) in positions.iter() {
            for partition in partitions.keys() {
                if !tracked.get(topic).is_some_and(|held| held.contains_key(partition)) {
                    FAMILIES.lag.remove(&LagLabels { consumer: self.consumer, topic, partition: *partition });
                }
            }
        }
        *positions = tracked;
    }

    /// Sets the lag of every tracked partition whose high-water mark `statistics` know.
    pub(crate) fn observe(&self, statistics: &Statistics) {
        let positions = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for topic in statistics.topics.values() {
            let Some((&name, held)) = positions.get_key_value(topic.topic.as_str()) else { continue };
            for partition in topic.partitions.values() {
                let Some(next) = held.get(&partition.partition) else { continue };
                if let Some(lag) = lag(partition.hi_offset, *next) {
                    let labels =
                        LagLabels { consumer: self.consumer, topic: name, partition: partition.partition };
                    FAMILIES.lag.get_or_create(&labels).set(lag);
                }
            }
        }
    }
}

impl Drop for ConsumerMeter {
    /// The consumer is gone (stopped, or restarting): its partitions' lag is no longer its to report.
    fn drop(&mut self) {
        self.track(&HashMap::new());
    }
}

/// The records of a partition whose high-water mark is `high_water_mark` that come at or after `next`; `None`
/// while the mark is unknown (librdkafka says -1 before its first fetch). Never negative: a mark read before the
/// runner's last batch can trail its position.
fn lag(high_water_mark: i64, next: i64) -> Option<i64> {
    (high_water_mark >= 0).then(|| (high_water_mark - next).max(0))
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::{Partition as PartitionStatistics, Topic};

    use super::*;

    fn statistics(topic: &str, marks: &[(i32, i64)]) -> Statistics {
        let partitions = marks
            .iter()
            .map(|&(partition, hi_offset)| {
                (partition, PartitionStatistics { partition, hi_offset, ..Default::default() })
            })
            .collect();
        let topic = Topic { topic: topic.to_owned(), partitions, ..Default::default() };
        Statistics { topics: HashMap::from([(topic.topic.clone(), topic)]), ..Default::default() }
    }

    fn lag_of(consumer: &'static str, topic: &'static str, partition: i32) -> Option<i64> {
        FAMILIES.lag.get(&LagLabels { consumer, topic, partition }).map(|gauge| gauge.get())
    }

    #[test]
    fn lag_is_the_high_water_mark_less_the_next_offset_and_never_negative() {
        assert_eq!(lag(10, 4), Some(6));
        assert_eq!(lag(10, 10), Some(0));
        assert_eq!(lag(10, 12), Some(0));
        assert_eq!(lag(-1, 0), None);
    }

    #[test]
    fn only_the_held_partitions_report_a_lag_which_returns_to_zero_when_caught_up() {
        let meter = ConsumerMeter::new("test.lag-consumer", "env.");
        let marks = statistics("env.widgets", &[(0, 10), (1, 7), (-1, 0)]);

        meter.track(&HashMap::from([(("widgets".to_owned(), 0), 4)]));
        meter.observe(&marks);
        assert_eq!(lag_of("test.lag-consumer", "env.widgets", 0), Some(6));
        assert_eq!(lag_of("test.lag-consumer", "env.widgets", 1), None, "not held");

        meter.track(&HashMap::from([(("widgets".to_owned(), 0), 10)]));
        meter.observe(&marks);
        assert_eq!(lag_of("test.lag-consumer", "env.widgets", 0), Some(0));

        meter.track(&HashMap::from([(("widgets".to_owned(), 1), 7)]));
        assert_eq!(lag_of("test.lag-consumer", "env.widgets", 0), None, "revoked");
        drop(meter);
        assert_eq!(
            lag_of("test.lag-consumer", "env.widgets", 1),
            None,
            "never observed, and the meter is gone"
        );
    }
}
