//! The relay's heartbeat: for one outbox, the time before which every committed event is on Kafka.
//!
//! A consumer that has seen, from every outbox, a heartbeat vouching for a topic through T, and has then consumed
//! that topic up to its end as it was after the heartbeat, holds every event committed before T.
//! That is how the order service tells "this account does not exist" from "this account is not in my projection
//! yet" (Debezium's heartbeats serve the same purpose). Heartbeats travel on a topic of their own, keyed by outbox,
//! compacted, so the entity topics carry nothing but events.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{EventType, cloudevents};

/// The heartbeat's type (`ce_type`).
pub const EVENT_TYPE: EventType = EventType { name: "shop.outbox.heartbeat", version: 1 };

/// One outbox's promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutboxHeartbeat {
    /// The outbox (its database's name); also the record key.
    pub outbox: String,
    /// When the relay looked, by the outbox database's clock.
    pub as_of: DateTime<Utc>,
    /// Every event this outbox committed before this time has been acknowledged by Kafka: the time of its oldest
    /// event still waiting, or `as_of` when none waits. Parked aggregates (refused for good, waiting for an
    /// operator) are left out.
    pub published_through: DateTime<Utc>,
    /// The topics of the events still waiting. For any other topic, the outbox vouches through `as_of`.
    pub pending_topics: Vec<String>,
}

impl OutboxHeartbeat {
    /// Up to when this outbox vouches that every event it committed for `topic` is on Kafka.
    pub fn complete_through(&self, topic: &str) -> DateTime<Utc> {
        if self.pending_topics.iter().any(|pending| pending == topic) {
            self.published_through
        } else {
            self.as_of
        }
    }

    /// The record headers it travels with (CloudEvents binary mode, like every event).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (cloudevents::SPEC_VERSION, "1.0".to_owned()),
            (cloudevents::ID, Uuid::now_v7().to_string()),
            (cloudevents::SOURCE, "/shop/relay".to_owned()),
            (cloudevents::TYPE, EVENT_TYPE.to_string()),
            (cloudevents::SUBJECT, self.outbox.clone()),
            (cloudevents::TIME, Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)),
            (cloudevents::CONTENT_TYPE, "application/json".to_owned()),
        ]
    }
}
