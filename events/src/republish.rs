//! Republishing current state, the way Debezium's incremental snapshots refill a topic.
//!
//! A topic can lose its first records: time- or size-based retention, `DeleteRecords`, or a broker that keeps only
//! so much per partition (the embedded one keeps about 5 MiB). A replay of it then rebuilds an incomplete
//! projection. The service that owns the topic's entities can append, through its outbox, one event per entity
//! carrying its current state at its current version (`shop.account.republished.v1`,
//! `shop.product.republished.v1`, `shop.order.republished.v1`): consumers that hold that version already ignore
//! it, and one that replays the topic gets every entity.
//!
//! When a run is done, its service appends a [`RepublishCompleted`] on [`topics::REPUBLISHES`]: the topic, and
//! where each of its partitions ended before the run wrote anything. Every record the run wrote, and every later
//! change, sits at or after those offsets; so while a partition's first offset is no later than the recorded one,
//! a replay of it from its beginning still sees every entity of that partition. That is how a rebuild tells a
//! topic whose lost history was refilled from one whose history is simply missing.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AggregateType, DomainEvent, EventType, topics};

/// The marker's aggregate type: a run of the `republish` command, published on [`topics::REPUBLISHES`].
pub const AGGREGATE_TYPE: AggregateType = AggregateType { name: "republish", topic: topics::REPUBLISHES };

/// The marker's type (`ce_type`).
pub const EVENT_TYPE: EventType = EventType { name: "shop.republish.completed", version: 1 };

/// `shop.republish.completed.v1`: a republish of one entity topic finished; every entity's current state is on
/// the topic at or after `partitions[].start_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RepublishCompleted {
    /// The run; also the record key.
    pub run_id: Uuid,
    /// The entity topic it refilled, as named without any `KAFKA_TOPIC_PREFIX` (for example `shop.accounts.v1`).
    pub topic: String,
    /// Where each partition of the topic ended before the run wrote anything: every record it wrote is at or after
    /// this offset.
    pub partitions: Vec<PartitionStart>,
    /// How many entities it republished.
    pub entities: u64,
    pub started_at: DateTime<Utc>,
    /// When the last of its events had been acknowledged by Kafka.
    pub completed_at: DateTime<Utc>,
}

/// Where one partition ended when a republish started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionStart {
    pub partition: i32,
    pub start_offset: i64,
}

impl RepublishCompleted {
    /// The offset the run recorded for `partition`, if it recorded one.
    pub fn start_offset(&self, partition: i32) -> Option<i64> {
        self.partitions.iter().find(|start| start.partition == partition).map(|start| start.start_offset)
    }
}

impl DomainEvent for RepublishCompleted {
    const AGGREGATE_TYPE: AggregateType = AGGREGATE_TYPE;
    const EVENT_TYPE: EventType = EVENT_TYPE;

    fn aggregate_id(&self) -> Uuid {
        self.run_id
    }

    /// A run is recorded once.
    fn aggregate_version(&self) -> i64 {
        1
    }

    fn check_invariants(&self) -> Result<(), String> {
        if self.run_id.is_nil() {
            return Err("run_id must not be the nil UUID".into());
        }
        if topics::spec(&self.topic).is_none_or(|spec| spec.republished_by.is_none()) {
            return Err(format!("{} is not a topic the shop republishes", self.topic));
        }
        if let Some(start) =
            self.partitions.iter().find(|start| start.partition < 0 || start.start_offset < 0)
        {
            return Err(format!("partition {} has no valid start offset", start.partition));
        }
        if self.completed_at < self.started_at {
            return Err("completed_at is before started_at".into());
        }
        Ok(())
    }
}

impl RepublishCompleted {
    /// Decodes a record of [`topics::REPUBLISHES`] given its `ce_type`; `None` for anything else (another type, a
    /// payload of the wrong shape, a run no republish could have recorded).
    pub fn decode(event_type: &str, payload: &[u8]) -> Option<Self> {
        if !EVENT_TYPE.matches(event_type) {
            return None;
        }
        let marker: Self = serde_json::from_slice(payload).ok()?;
        marker.check_invariants().ok()?;
        Some(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn marker() -> RepublishCompleted {
        RepublishCompleted {
            run_id: Uuid::now_v7(),
            topic: topics::ACCOUNTS.into(),
            partitions: vec![
                PartitionStart { partition: 0, start_offset: 120 },
                PartitionStart { partition: 1, start_offset: 0 },
            ],
            entities: 3,
            started_at: "2026-11-21T12:00:00Z".parse().unwrap(),
            completed_at: "2026-11-21T12:00:02Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_completed_republish_travels_on_its_own_topic_keyed_by_run() {
        let marker = marker();

        let envelope = Envelope::new(&marker, None);

        assert_eq!(envelope.topic, topics::REPUBLISHES);
        assert_eq!(envelope.event_type, "shop.republish.completed.v1");
        assert_eq!((envelope.aggregate_id, envelope.aggregate_version), (marker.run_id, 1));
        let payload = serde_json::to_vec(&envelope.payload).unwrap();
        assert_eq!(RepublishCompleted::decode(&envelope.event_type, &payload), Some(marker));
    }

    #[test]
    fn a_partition_the_run_did_not_record_has_no_start_offset() {
        let marker = marker();

        assert_eq!(marker.start_offset(0), Some(120));
        assert_eq!(marker.start_offset(2), None);
    }

    #[test]
    fn records_that_are_not_a_completed_republish_decode_to_nothing() {
        let valid = serde_json::to_vec(&marker()).unwrap();
        let heartbeat_topic =
            serde_json::to_vec(&RepublishCompleted { topic: topics::HEARTBEATS.into(), ..marker() }).unwrap();
        let negative = serde_json::to_vec(&RepublishCompleted {
            partitions: vec![PartitionStart { partition: 0, start_offset: -1 }],
            ..marker()
        })
        .unwrap();

        assert!(RepublishCompleted::decode("shop.republish.completed.v2", &valid).is_none());
        assert!(RepublishCompleted::decode("shop.republish.completed.v1", b"{}").is_none());
        assert!(RepublishCompleted::decode("shop.republish.completed.v1", &heartbeat_topic).is_none());
        assert!(RepublishCompleted::decode("shop.republish.completed.v1", &negative).is_none());
    }
}
