//! The envelope every event travels in, and the trait that ties a payload type to its aggregate and event type.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{TraceContext, topics};

/// The kind of entity an event is about, and the topic its events are published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateType {
    /// Stored in the outbox's `aggregate_type` column (Debezium's `aggregatetype`).
    pub name: &'static str,
    /// The Kafka topic every event of this aggregate type goes to.
    pub topic: &'static str,
}

impl AggregateType {
    pub const ACCOUNT: Self = Self { name: "account", topic: topics::ACCOUNTS };
    pub const PRODUCT: Self = Self { name: "product", topic: topics::PRODUCTS };
    pub const ORDER: Self = Self { name: "order", topic: topics::ORDERS };
    pub const STOCK_RESERVATION: Self = Self { name: "stock_reservation", topic: topics::STOCK_RESERVATIONS };
}

/// A versioned event type. Its string form, `{name}.v{version}` (for example `shop.order.placed.v1`), is the
/// outbox's `event_type` column and the CloudEvents `ce_type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub version: u32,
}

impl EventType {
    /// Whether `event_type` (as stored or received) names this type at this version.
    pub fn matches(&self, event_type: &str) -> bool {
        event_type
            .strip_prefix(self.name)
            .and_then(|rest| rest.strip_prefix(".v"))
            .and_then(|version| version.parse::<u32>().ok())
            == Some(self.version)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.v{}", self.name, self.version)
    }
}

/// A payload type: the full state of one aggregate after a change, named in the past tense.
pub trait DomainEvent: Serialize + DeserializeOwned {
    const AGGREGATE_TYPE: AggregateType;
    const EVENT_TYPE: EventType;

    /// The id of the aggregate this event is about; the Kafka key.
    fn aggregate_id(&self) -> Uuid;

    /// The aggregate's version after this event: 1 for the first event, then one more per event. Consumers apply
    /// an event only if its version is newer than the one they hold.
    fn aggregate_version(&self) -> i64;

    /// Checks the rules the producing service keeps for the state the event carries, so that a consumer never
    /// applies a record that no producer of ours could have written (forged, corrupted, or from a buggy tool).
    fn check_invariants(&self) -> Result<(), String>;
}

/// One event with its metadata: one outbox row, one Kafka record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7, unique per event; the CloudEvents `ce_id`. Consumers may deduplicate on it.
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// Unique per aggregate: `(aggregate_id, aggregate_version)` identifies an event as well as `event_id` does.
    pub aggregate_version: i64,
    /// `{name}.v{version}`, see [`EventType`].
    pub event_type: String,
    pub topic: String,
    /// The payload, a [`DomainEvent`] serialized to JSON.
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    /// The trace of the request that caused the event, if it carried one.
    pub trace: Option<TraceContext>,
}

impl Envelope {
    /// Wraps a payload, taking its aggregate, version, type and topic from the payload itself so they cannot
    /// disagree.
    pub fn new<E: DomainEvent>(event: &E, trace: Option<&TraceContext>) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            aggregate_type: E::AGGREGATE_TYPE.name.to_owned(),
            aggregate_id: event.aggregate_id(),
            aggregate_version: event.aggregate_version(),
            event_type: E::EVENT_TYPE.to_string(),
            topic: E::AGGREGATE_TYPE.topic.to_owned(),
            // Payloads are plain structs with string keys: serializing them to a JSON value cannot fail.
            payload: serde_json::to_value(event).expect("event payloads always serialize to JSON"),
            occurred_at: now(),
            trace: trace.cloned(),
        }
    }

    /// Reads the payload back as `E`, checking that the envelope holds that event type.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        if !E::EVENT_TYPE.matches(&self.event_type) {
            return Err(DecodeError::UnexpectedType {
                expected: E::EVENT_TYPE.to_string(),
                found: self.event_type.clone(),
            });
        }
        E::deserialize(&self.payload).map_err(DecodeError::Payload)
    }
}

/// The current time truncated to microseconds, the precision Postgres stores: a timestamp taken with it reads
/// back from the database equal to the one written, and the events agree with the rows.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The event type is not one this code knows, for example a newer version. Consumers usually skip it.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("expected an event of type `{expected}`, found `{found}`")]
    UnexpectedType { expected: String, found: String },
    #[error("the payload does not match its event type: {0}")]
    Payload(#[source] serde_json::Error),
    /// The payload decodes but breaks a rule its producer always keeps (a negative price, a blank name…): a
    /// consumer must not apply it.
    #[error("the event breaks its invariants: {0}")]
    Invalid(String),
}

/// Declares the enum of every event one aggregate type can emit, with a `decode` by event type for consumers.
macro_rules! event_family {
    ($(#[$meta:meta])* $vis:vis enum $family:ident { $($variant:ident($event:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $family {
            $($variant($event)),+
        }

        impl $family {
            /// The JSON Schema of every event type in this family, generated from the Rust types.
            pub fn schemas() -> Vec<($crate::EventType, schemars::Schema)> {
                vec![$((<$event as $crate::DomainEvent>::EVENT_TYPE, schemars::schema_for!($event))),+]
            }

            /// Decodes a payload given its event type (the `ce_type` header or the outbox's `event_type`).
            pub fn decode(event_type: &str, payload: &[u8]) -> Result<Self, $crate::DecodeError> {
                $(
                    if <$event as $crate::DomainEvent>::EVENT_TYPE.matches(event_type) {
                        let event: $event =
                            serde_json::from_slice(payload).map_err($crate::DecodeError::Payload)?;
                        $crate::DomainEvent::check_invariants(&event).map_err($crate::DecodeError::Invalid)?;
                        return Ok(Self::$variant(event));
                    }
                )+
                Err($crate::DecodeError::UnknownType(event_type.to_owned()))
            }

            /// The id of the aggregate the event is about.
            pub fn aggregate_id(&self) -> uuid::Uuid {
                match self {
                    $(Self::$variant(event) => $crate::DomainEvent::aggregate_id(event)),+
                }
            }

            /// The aggregate's version after the event.
            pub fn aggregate_version(&self) -> i64 {
                match self {
                    $(Self::$variant(event) => $crate::DomainEvent::aggregate_version(event)),+
                }
            }

            /// The event in its envelope, as [`Envelope::new`]($crate::Envelope::new) wraps it.
            pub fn to_envelope(&self, trace: Option<&$crate::TraceContext>) -> $crate::Envelope {
                match self {
                    $(Self::$variant(event) => $crate::Envelope::new(event, trace)),+
                }
            }
        }
    };
}
pub(crate) use event_family;

/// Implements [`DomainEvent`] for a payload struct whose `$state` field is the aggregate's full state (with `id` and
/// `version` fields).
macro_rules! domain_event {
    ($event:ty, $aggregate:expr, $name:literal v $version:literal, $state:ident) => {
        $crate::envelope::domain_event!($event, $aggregate, $name v $version, $state.id);
    };
    ($event:ty, $aggregate:expr, $name:literal v $version:literal, $state:ident . $id:ident) => {
        impl $crate::DomainEvent for $event {
            const AGGREGATE_TYPE: $crate::AggregateType = $aggregate;
            const EVENT_TYPE: $crate::EventType = $crate::EventType { name: $name, version: $version };

            fn aggregate_id(&self) -> uuid::Uuid {
                self.$state.$id
            }

            fn aggregate_version(&self) -> i64 {
                self.$state.version
            }

            fn check_invariants(&self) -> Result<(), String> {
                self.$state.check_invariants()
            }
        }
    };
}
pub(crate) use domain_event;

/// Shared checks for [`DomainEvent::check_invariants`].
pub(crate) mod invariants {
    use uuid::Uuid;

    /// Control characters a description may hold, as the catalog allows them: line breaks and tabs.
    pub(crate) const LINE_BREAKS_AND_TABS: &[char] = &['\n', '\t'];

    /// `value` is 1 or more (an aggregate's version, a quantity).
    pub(crate) fn positive(field: &str, value: i64) -> Result<(), String> {
        if value < 1 { Err(format!("{field} must be at least 1, not {value}")) } else { Ok(()) }
    }

    /// `value` is at most `max` (a quantity).
    pub(crate) fn at_most(field: &str, value: i64, max: i64) -> Result<(), String> {
        if value > max { Err(format!("{field} must be at most {max}, not {value}")) } else { Ok(()) }
    }

    /// `cents` is zero or more.
    pub(crate) fn money(field: &str, cents: i64) -> Result<(), String> {
        if cents < 0 { Err(format!("{field} must not be negative, not {cents}")) } else { Ok(()) }
    }

    /// `id` is not the nil UUID, which no service of ours hands out.
    pub(crate) fn id(field: &str, id: Uuid) -> Result<(), String> {
        if id.is_nil() { Err(format!("{field} must not be the nil UUID")) } else { Ok(()) }
    }

    /// `text` has at most `max_chars` characters and no control character but those `allowed` (never NUL, which
    /// no Postgres text column can hold); with `required`, it is not blank.
    pub(crate) fn text(
        field: &str,
        text: &str,
        max_chars: usize,
        required: bool,
        allowed: &[char],
    ) -> Result<(), String> {
        if required && text.trim().is_empty() {
            return Err(format!("{field} must not be blank"));
        }
        if text.chars().nth(max_chars).is_some() {
            return Err(format!("{field} is longer than {max_chars} characters"));
        }
        if let Some(control) = text.chars().find(|c| c.is_control() && !allowed.contains(c)) {
            return Err(format!("{field} contains the control character {control:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_type_reads_as_name_dot_version() {
        let placed = EventType { name: "shop.order.placed", version: 1 };

        assert_eq!(placed.to_string(), "shop.order.placed.v1");
        assert!(placed.matches("shop.order.placed.v1"));
        assert!(!placed.matches("shop.order.placed.v2"));
        assert!(!placed.matches("shop.order.placed"));
        assert!(!placed.matches("shop.order.placed.v1x"));
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
