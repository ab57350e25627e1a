//! A consumed record, owned.

use rdkafka::message::{Headers, Message};
use shop_events::{
    Envelope, TraceContext,
    cloudevents::{self, InvalidHeaders, ReceivedMetadata},
};
use shop_platform::trace;

use crate::offsets::{Partition, storable};

/// Most characters of a record's id (`ce_id`) kept with a position: ours are UUIDs (36), anything longer is not.
const MAX_RECORD_ID_CHARS: usize = 64;
/// Most characters of an event type (`ce_type`) kept or logged: ours are under 40.
const MAX_EVENT_TYPE_CHARS: usize = 256;

/// A consumed Kafka record, owned, so a batch can outlive the consumer's buffers and be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Option<Vec<u8>>,
}

impl Record {
    /// Copies a record out of any rdkafka message.
    pub fn from_message(message: &impl Message) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }

    /// The record the relay publishes for `event` (key: the aggregate's id; the CloudEvents headers; the payload
    /// as JSON), as consumed from `partition` of `topic` at `offset`: for tools and tests that feed a projection
    /// without a broker.
    pub fn of_event(topic: &str, partition: i32, offset: i64, event: &Envelope) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            offset,
            key: Some(event.aggregate_id.to_string().into_bytes()),
            headers: event
                .metadata()
                .headers()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.into_bytes()))
                .collect(),
            payload: Some(serde_json::to_vec(&event.payload).expect("a JSON value serializes")),
        }
    }

    /// Its topic (as the projection names it) and partition.
    pub fn partition_key(&self) -> Partition {
        (self.topic.clone(), self.partition)
    }

    /// The value of header `name`, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The record's id (`ce_id`) as it is kept with a position and compared when the position is checked: made
    /// storable (NUL replaced, length bounded), since a header nobody validated must never make the position
    /// unwritable.
    pub fn record_id(&self) -> Option<String> {
        self.header(cloudevents::ID).map(|id| storable(id, MAX_RECORD_ID_CHARS))
    }

    /// The event type (`ce_type`).
    pub fn event_type(&self) -> Option<&str> {
        self.header(cloudevents::TYPE)
    }

    /// The event type as it is kept in `projection_skipped` and logged: made storable (NUL replaced, length
    /// bounded), since a header nobody validated must neither fail the write nor flood the log.
    pub fn shown_event_type(&self) -> Option<String> {
        self.event_type().map(|event_type| storable(event_type, MAX_EVENT_TYPE_CHARS))
    }

    /// The event's metadata from the CloudEvents headers.
    /// The trace context the record carries in its `traceparent` header, if a valid one.
    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::from_headers(|name| self.header(name))
    }

    pub fn metadata(&self) -> Result<ReceivedMetadata, InvalidHeaders> {
        ReceivedMetadata::from_headers(
            self.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice())),
        )
    }

    /// The payload, or an empty slice for a tombstone.
    pub fn payload(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }
}

/// The span of `consumer` applying `batch` in one transaction (see [`trace::process_span`]), named after its topic
/// when it has one, with the record's place when it is alone.
pub(crate) fn batch_span(consumer: &str, batch: &[Record]) -> tracing::Span {
    let topic = batch.first().map(|record| record.topic.as_str()).unwrap_or_default();
    let topic = if batch.iter().all(|record| record.topic == topic) { topic } else { "several topics" };
    let span = trace::process_span(consumer, topic, batch.len(), || {
        batch.iter().filter_map(Record::trace).collect()
    });
    if let [record] = batch {
        trace::record_position(&span, record.partition, record.offset);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> Record {
        Record {
            topic: "widgets".into(),
            partition: 0,
            offset: 0,
            key: None,
            headers: vec![(cloudevents::ID.into(), id.as_bytes().to_vec())],
            payload: None,
        }
    }

    #[test]
    fn a_record_id_is_kept_storable_and_bounded() {
        let ours = uuid::Uuid::now_v7().to_string();

        assert_eq!(with_id(&ours).record_id(), Some(ours));
        assert_eq!(with_id("a\0b").record_id().as_deref(), Some("a\u{FFFD}b"));
        let long = with_id(&"x".repeat(1_000_000)).record_id().unwrap();
        assert_eq!(long.chars().count(), MAX_RECORD_ID_CHARS + 1);
    }
}
