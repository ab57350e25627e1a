//! Whether a replay from the beginning of a projection's topics still sees every entity, checked before a rebuild
//! consumes anything.
//!
//! A partition whose first offset (low watermark) is above 0 has lost records: retention, `DeleteRecords`, or a
//! broker that keeps only so much per partition (the embedded one keeps about 5 MiB). Its history is whole again
//! once a completed republish of its topic ([`shop_events::republish`]) recorded a start offset for it no lower
//! than that first offset: every entity's state since the republish is still there. Anything else is missing
//! history, and a rebuild from it would lack entities.

use std::{collections::HashMap, fmt, time::Duration};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
};
use shop_events::{cloudevents, republish::RepublishCompleted, topics};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Source, TracingContext, Watermarks};

/// How long reading the completed republishes may take.
const READ_REPUBLISHES_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition whose first records are gone, and no completed republish makes up for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingHistory {
    /// The topic as the projection names it (without a prefix).
    pub topic: String,
    pub partition: i32,
    /// The partition's first offset: every record before it is gone.
    pub first_offset: i64,
    /// The latest start offset a completed republish of the topic recorded for this partition, if any: lower
    /// than `first_offset`, so some of what that run wrote is gone too.
    pub republished_from: Option<i64>,
}

/// The partitions of `watermarks` whose history is missing, given the completed republishes read from
/// `shop.republishes.v1`, sorted by topic and partition.
///
/// A partition whose first offset is 0 lacks nothing. One whose first offset is above 0 lacks nothing if a
/// completed republish of its topic recorded a start offset for it at or after that first offset (nothing that run
/// wrote, nor anything after, was deleted); a partition the run did not record (added since) is not covered.
pub fn missing_history(watermarks: &Watermarks, republishes: &[RepublishCompleted]) -> Vec<MissingHistory> {
    let mut missing: Vec<MissingHistory> = watermarks
        .iter()
        .filter(|(_, (low, _))| *low > 0)
        .filter_map(|((topic, partition), (low, _))| {
            let republished_from = republishes
                .iter()
                .filter(|run| run.topic == *topic)
                .filter_map(|run| run.start_offset(*partition))
                .max();
            (republished_from < Some(*low)).then(|| MissingHistory {
                topic: topic.clone(),
                partition: *partition,
                first_offset: *low,
                republished_from,
            })
        })
        .collect();
    missing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    missing
}

/// The partitions of `topics` on `source` whose history is missing (see [`missing_history`]). Reads the completed
/// republishes only when some partition has lost records.
pub async fn check_history(source: &Source, topics: &[&'static str]) -> anyhow::Result<Vec<MissingHistory>> {
    let watermarks = source.watermarks(topics).await?;
    if watermarks.values().all(|(low, _)| *low == 0) {
        return Ok(Vec::new());
    }
    let republishes = read_republishes(source).await?;
    Ok(missing_history(&watermarks, &republishes))
}

/// Every completed republish on `shop.republishes.v1` (a small compacted topic), read from its beginning to where it
/// ends now. None when the topic does not exist.
async fn read_republishes(source: &Source) -> anyhow::Result<Vec<RepublishCompleted>> {
    let ends = source.watermarks(&[topics::REPUBLISHES]).await?;
    let mut remaining: HashMap<i32, i64> = ends
        .iter()
        .filter(|(_, (low, high))| high > low)
        .map(|((_, partition), (_, high))| (*partition, *high))
        .collect();
    if remaining.is_empty() {
        return Ok(Vec::new());
    }
    let topic = source.topic(topics::REPUBLISHES);
    let mut config = source.config.clone();
    config
        .set("group.id", source.topic(&format!("republishes-reader-{}", Uuid::now_v7())))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer<TracingContext> = config.create_with_context(TracingContext)?;
    let mut assignment = TopicPartitionList::new();
    for partition in remaining.keys() {
        assignment.add_partition_offset(&topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let deadline = Instant::now() + READ_REPUBLISHES_TIMEOUT;
    let mut republishes = Vec::new();
    while !remaining.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv()).await.map_err(|_| {
            anyhow::anyhow!("could not read {topic} to its end within {READ_REPUBLISHES_TIMEOUT:?}")
        })?;
        match message {
            Ok(message) => {
                let event_type = message
                    .headers()
                    .and_then(|headers| {
                        use rdkafka::message::Headers as _;
                        headers.iter().find(|header| header.key == cloudevents::TYPE).and_then(|h| h.value)
                    })
                    .and_then(|value| std::str::from_utf8(value).ok())
                    .unwrap_or_default();
                match RepublishCompleted::decode(event_type, message.payload().unwrap_or_default()) {
                    Some(republish) => republishes.push(republish),
                    None => tracing::debug!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "Passed over a record of the republishes topic that is not a completed republish."
                    ),
                }
                if remaining.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                    remaining.remove(&message.partition());
                }
            }
            // Compaction can leave a partition's last offsets empty: its end is where it ends.
            Err(KafkaError::PartitionEOF(partition)) => {
                remaining.remove(&partition);
            }
            Err(error) => {
                tracing::debug!(error.message = %error, "Consumer error reading the republishes topic.")
            }
        }
    }
    Ok(republishes)
}

/// A rebuild's refusal: the topics lost history no completed republish makes up for.
#[derive(Debug, Clone, thiserror::Error)]
pub struct IncompleteHistory {
    pub missing: Vec<MissingHistory>,
    /// The topics' prefix on the cluster, to name them as the operator sees them.
    pub topic_prefix: String,
}

impl fmt::Display for IncompleteHistory {
    /// Names every partition with its first offset, then what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "refusing to rebuild: the first records of these partitions were deleted (retention, DeleteRecords, or a \
             broker that keeps only so much per partition), so a replay would miss entities:"
        )?;
        describe(f, &self.missing, &self.topic_prefix)?;
        let mut commands = Vec::new();
        let mut others = Vec::new();
        for topic in topics_of(&self.missing) {
            match topics::spec(topic).and_then(|spec| spec.republished_by) {
                Some(binary) => commands.push(format!("`{binary} republish` (refills {})", self.name(topic))),
                None => others.push(self.name(topic)),
            }
        }
        if !commands.is_empty() {
            let each = if commands.len() == 1 { "it appends" } else { "each appends" };
            write!(
                f,
                "Run {}: {each} every entity's current state again. Then run the rebuild again.",
                commands.join(" and ")
            )?;
        }
        if !others.is_empty() {
            write!(
                f,
                " No command of the shop republishes {}: republish them from their source.",
                others.join(", ")
            )?;
        }
        write!(
            f,
            " Or pass --accept-incomplete-history (REBUILD_ACCEPT_INCOMPLETE_HISTORY=true) to rebuild from what is \
             left, without those entities."
        )
    }
}

impl IncompleteHistory {
    fn name(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }
}

/// One line per topic: `  shop.accounts.v1: partition 0 from offset 120, partition 2 from offset 97 (a republish
/// from offset 60 was partly deleted since)`.
fn describe(f: &mut impl fmt::Write, missing: &[MissingHistory], prefix: &str) -> fmt::Result {
    for topic in topics_of(missing) {
        let partitions: Vec<String> = missing
            .iter()
            .filter(|gap| gap.topic == topic)
            .map(|gap| {
                let mut line = format!("partition {} starts at offset {}", gap.partition, gap.first_offset);
                if let Some(from) = gap.republished_from {
                    line.push_str(&format!(
                        " (the latest republish wrote from offset {from}: partly deleted since)"
                    ));
                }
                line
            })
            .collect();
        writeln!(f, "  {prefix}{topic}: {}", partitions.join(", "))?;
    }
    Ok(())
}

/// The same on one line: `shop.accounts.v1 partition 0 from offset 120, partition 2 from offset 97; shop.products.v1
/// partition 1 from offset 45`.
pub(crate) fn summary(missing: &[MissingHistory], prefix: &str) -> String {
    topics_of(missing)
        .into_iter()
        .map(|topic| {
            let partitions: Vec<String> = missing
                .iter()
                .filter(|gap| gap.topic == topic)
                .map(|gap| format!("partition {} from offset {}", gap.partition, gap.first_offset))
                .collect();
            format!("{prefix}{topic} {}", partitions.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The topics of `missing`, in order, once each.
fn topics_of(missing: &[MissingHistory]) -> Vec<&str> {
    let mut topics: Vec<&str> = missing.iter().map(|gap| gap.topic.as_str()).collect();
    topics.dedup();
    topics
}

#[cfg(test)]
mod tests {
    use shop_events::republish::PartitionStart;

    use super::*;

    fn marks(partitions: &[(&str, i32, i64)]) -> Watermarks {
        partitions
            .iter()
            .map(|(topic, partition, low)| (((*topic).to_owned(), *partition), (*low, low + 100)))
            .collect()
    }

    fn republish(topic: &str, starts: &[(i32, i64)]) -> RepublishCompleted {
        RepublishCompleted {
            run_id: Uuid::now_v7(),
            topic: topic.to_owned(),
            partitions: starts
                .iter()
                .map(|(partition, start_offset)| PartitionStart {
                    partition: *partition,
                    start_offset: *start_offset,
                })
                .collect(),
            entities: 10,
            started_at: "2026-11-21T12:00:00Z".parse().unwrap(),
            completed_at: "2026-11-21T12:00:01Z".parse().unwrap(),
        }
    }

    fn gap(topic: &str, partition: i32, first_offset: i64, republished_from: Option<i64>) -> MissingHistory {
        MissingHistory { topic: topic.to_owned(), partition, first_offset, republished_from }
    }

    #[test]
    fn partitions_that_start_at_offset_0_lack_nothing() {
        let watermarks = marks(&[(topics::ACCOUNTS, 0, 0), (topics::ACCOUNTS, 1, 0)]);

        assert_eq!(missing_history(&watermarks, &[]), []);
    }

    #[test]
    fn a_partition_that_lost_its_first_records_lacks_history_until_a_republish_covers_it() {
        let watermarks =
            marks(&[(topics::ACCOUNTS, 1, 40), (topics::ACCOUNTS, 0, 120), (topics::PRODUCTS, 0, 0)]);

        assert_eq!(
            missing_history(&watermarks, &[]),
            [gap(topics::ACCOUNTS, 0, 120, None), gap(topics::ACCOUNTS, 1, 40, None)]
        );
    }

    #[test]
    fn a_republish_that_started_at_or_after_the_first_offset_covers_the_partition() {
        let watermarks = marks(&[(topics::ACCOUNTS, 0, 120), (topics::ACCOUNTS, 1, 40)]);
        let run = republish(topics::ACCOUNTS, &[(0, 120), (1, 75)]);

        assert_eq!(missing_history(&watermarks, &[run]), []);
    }

    #[test]
    fn a_republish_partly_deleted_since_does_not_cover_the_partition_and_is_named() {
        let watermarks = marks(&[(topics::ACCOUNTS, 0, 120)]);
        let older = republish(topics::ACCOUNTS, &[(0, 30)]);
        let newer = republish(topics::ACCOUNTS, &[(0, 90)]);

        assert_eq!(missing_history(&watermarks, &[older, newer]), [gap(topics::ACCOUNTS, 0, 120, Some(90))]);
    }

    #[test]
    fn the_latest_start_offset_of_any_run_counts() {
        let watermarks = marks(&[(topics::ACCOUNTS, 0, 120)]);
        let runs = [republish(topics::ACCOUNTS, &[(0, 30)]), republish(topics::ACCOUNTS, &[(0, 150)])];

        assert_eq!(missing_history(&watermarks, &runs), []);
    }

    #[test]
    fn a_republish_of_another_topic_or_without_the_partition_covers_nothing() {
        let watermarks = marks(&[(topics::ACCOUNTS, 0, 120), (topics::ACCOUNTS, 3, 10)]);
        let runs =
            [republish(topics::PRODUCTS, &[(0, 500), (3, 500)]), republish(topics::ACCOUNTS, &[(0, 500)])];

        assert_eq!(missing_history(&watermarks, &runs), [gap(topics::ACCOUNTS, 3, 10, None)]);
    }

    #[test]
    fn what_an_incomplete_rebuild_lacks_reads_on_one_line() {
        let missing = [
            gap(topics::ACCOUNTS, 0, 120, None),
            gap(topics::ACCOUNTS, 2, 97, None),
            gap(topics::PRODUCTS, 1, 45, None),
        ];

        assert_eq!(
            summary(&missing, ""),
            "shop.accounts.v1 partition 0 from offset 120, partition 2 from offset 97; shop.products.v1 partition 1 \
             from offset 45"
        );
    }

    #[test]
    fn the_refusal_names_every_partition_with_its_first_offset_and_the_command_that_refills_its_topic() {
        let refusal = IncompleteHistory {
            missing: vec![
                gap(topics::ACCOUNTS, 0, 120, None),
                gap(topics::ACCOUNTS, 2, 97, Some(60)),
                gap(topics::PRODUCTS, 1, 45, None),
                gap("someone-elses.topic", 0, 3, None),
            ],
            topic_prefix: "staging.".into(),
        };

        let message = refusal.to_string();

        for expected in [
            "staging.shop.accounts.v1: partition 0 starts at offset 120, partition 2 starts at offset 97 (the latest \
             republish wrote from offset 60",
            "staging.shop.products.v1: partition 1 starts at offset 45",
            "`account republish` (refills staging.shop.accounts.v1) and `catalog republish` (refills \
             staging.shop.products.v1)",
            "No command of the shop republishes staging.someone-elses.topic",
            "--accept-incomplete-history",
        ] {
            assert!(message.contains(expected), "{expected:?} in:\n{message}");
        }
    }
}
