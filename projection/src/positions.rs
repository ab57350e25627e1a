//! Checking stored positions against the log before consuming from them.
//!
//! A position (an offset in Postgres) only means something on the log it was taken on. A topic deleted and created
//! again, a broker replaced (the embedded one starts empty on every run), a fail-over to another cluster: the
//! offsets start over, and a consumer that trusted its old position would take new records for ones it already
//! applied and skip them for good. So before a consumer goes on from a position, the position is judged against
//! what the log is now:
//! - the cluster id it was stored with (when the broker gives one),
//! - the partition's bounds (a position beyond the end belongs to another log; one before the beginning means
//!   records were deleted, by retention or `DeleteRecords`, before they were applied),
//! - the record at the position's last offset, which must be the one applied there (its `ce_id`); this catches a
//!   recreated topic that has already regrown past the position.
//!
//! Kafka's own topic ids (KIP-516) would say the same more directly, but librdkafka exposes them only through an
//! admin call the Rust client does not wrap; the record check needs nothing but a fetch, and also tells apart two
//! clusters that mirror one topic under different offsets.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaResult,
};
use uuid::Uuid;

use crate::offsets::StoredPosition;

/// How long a probe waits for the record at a position.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stored position means on the log as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is stored: consume from the beginning.
    Fresh,
    /// The log is the one the position was taken on: go on from the stored offset.
    Continue(i64),
    /// Another log (the topic was recreated, the broker or the cluster replaced): consume it from its beginning.
    /// Versions the projection already holds are ignored.
    Replaced { stored: i64, low: i64, reason: String },
    /// The records between the stored offset and the beginning of the log were deleted before they were applied:
    /// go on from the beginning of what is left. The projection misses them.
    Truncated { stored: i64, low: i64 },
}

impl Verdict {
    /// Where to consume from.
    pub fn start(&self) -> Offset {
        match self {
            Self::Fresh => Offset::Beginning,
            Self::Continue(offset) => Offset::Offset(*offset),
            Self::Replaced { low, .. } | Self::Truncated { low, .. } => Offset::Offset(*low),
        }
    }
}

/// One partition of the log, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    pub cluster_id: Option<String>,
    /// The offset of the first record still there.
    pub low: i64,
    /// The offset the next record will get.
    pub high: i64,
    /// The first record at or after the stored position's last offset: its offset and `ce_id`.
    pub last: Option<(i64, Option<String>)>,
}

/// Judges `stored` against `log`.
pub fn judge(stored: Option<&StoredPosition>, log: &LogState) -> Verdict {
    let Some(stored) = stored else { return Verdict::Fresh };
    let next = stored.next_offset;
    let replaced = |reason: String| Verdict::Replaced { stored: next, low: log.low, reason };
    if let (Some(was), Some(is)) = (&stored.cluster_id, &log.cluster_id)
        && was != is
    {
        return replaced(format!("the partition now lives on cluster {is}, not {was}"));
    }
    if next > log.high {
        return replaced(format!("the partition ends at offset {}, before the stored position", log.high));
    }
    if let (Some(applied), Some((offset, found))) = (&stored.last_record_id, &log.last)
        && *offset == next - 1
        && found.as_ref() != Some(applied)
    {
        return replaced(format!("the record at offset {offset} is not the one applied there ({applied})"));
    }
    if next < log.low {
        return Verdict::Truncated { stored: next, low: log.low };
    }
    Verdict::Continue(next)
}

/// Reads the state of `partitions` (as named on the cluster), each with the offset of the record to check, if
/// any. Blocks: run it off the async workers.
pub fn probe(config: &ClientConfig, partitions: &[(String, i32, Option<i64>)]) -> KafkaResult<Vec<LogState>> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("shop-probe-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let cluster_id = consumer.client().fetch_cluster_id(PROBE_TIMEOUT);
    let mut states = Vec::with_capacity(partitions.len());
    let mut checks = TopicPartitionList::new();
    for (topic, partition, check_at) in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *partition, PROBE_TIMEOUT)?;
        states.push(LogState { cluster_id: cluster_id.clone(), low, high, last: None });
        if let Some(offset) = check_at.filter(|offset| (low..high).contains(offset)) {
            checks.add_partition_offset(topic, *partition, Offset::Offset(offset))?;
        }
    }
    if checks.count() == 0 {
        return Ok(states);
    }
    let mut missing = checks.count();
    consumer.assign(&checks)?;
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    while missing > 0 && std::time::Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let Some(index) = partitions
            .iter()
            .position(|(topic, partition, _)| topic == message.topic() && *partition == message.partition())
        else {
            continue;
        };
        if states[index].last.is_none() {
            let record = crate::Record::from_message(&message);
            states[index].last = Some((message.offset(), record.record_id()));
            missing -= 1;
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(next_offset: i64, last: &str) -> StoredPosition {
        StoredPosition {
            next_offset,
            cluster_id: Some("cluster-a".into()),
            last_record_id: Some(last.into()),
        }
    }

    fn log(low: i64, high: i64, last: Option<(i64, &str)>) -> LogState {
        LogState {
            cluster_id: Some("cluster-a".into()),
            low,
            high,
            last: last.map(|(offset, id)| (offset, Some(id.to_owned()))),
        }
    }

    #[test]
    fn the_same_log_goes_on_from_the_stored_position() {
        assert_eq!(judge(Some(&stored(10, "e9")), &log(0, 25, Some((9, "e9")))), Verdict::Continue(10));
        assert_eq!(judge(None, &log(0, 25, None)), Verdict::Fresh);
    }

    #[test]
    fn a_compacted_away_record_cannot_be_checked_and_is_trusted() {
        assert_eq!(judge(Some(&stored(10, "e9")), &log(0, 25, Some((12, "e12")))), Verdict::Continue(10));
    }

    #[test]
    fn a_log_that_ends_before_the_position_was_replaced() {
        let verdict = judge(Some(&stored(500, "e499")), &log(0, 3, None));

        assert!(matches!(verdict, Verdict::Replaced { stored: 500, low: 0, .. }), "{verdict:?}");
        assert_eq!(verdict.start(), Offset::Offset(0));
    }

    #[test]
    fn a_log_that_regrew_past_the_position_is_told_by_the_record_there() {
        let verdict = judge(Some(&stored(10, "e9")), &log(0, 40, Some((9, "another event"))));

        assert!(matches!(verdict, Verdict::Replaced { stored: 10, low: 0, .. }), "{verdict:?}");
    }

    #[test]
    fn another_cluster_is_another_log() {
        let mut other = log(0, 40, Some((9, "e9")));
        other.cluster_id = Some("cluster-b".into());

        assert!(matches!(judge(Some(&stored(10, "e9")), &other), Verdict::Replaced { .. }));
    }

    #[test]
    fn records_deleted_before_they_were_applied_are_a_truncation() {
        assert_eq!(
            judge(Some(&stored(10, "e9")), &log(50, 80, None)),
            Verdict::Truncated { stored: 10, low: 50 }
        );
    }
}
