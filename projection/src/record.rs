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
    pub headers: RecordHeaders,
    pub payload: Option<Vec<u8>>,
}

/// A record's headers, every name in one string and every value in one buffer: copying a consumed record's ten
/// headers then costs three allocations rather than twenty, which a replay of millions of records feels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordHeaders {
    names: String,
    values: Vec<u8>,
    /// Where each header's name ends in `names` and its value in `values`, in order.
    ends: Vec<(usize, usize)>,
}

impl RecordHeaders {
    /// Adds a header after the others (a name may come more than once, as Kafka allows).
    pub fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.ends.push((self.names.len(), self.values.len()));
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|((name_start, value_start), &(name_end, value_end))| {
            (&self.names[name_start..name_end], &self.values[value_start..value_end])
        })
    }

    /// A copy of a consumed message's headers, each buffer allocated once at its final size: grown header by
    /// header, the nine headers the relay gives a record took about fourteen allocations, and a replay copies
    /// millions of records.
    fn copy_of(headers: &impl Headers) -> Self {
        let (names, values) = headers.iter().fold((0, 0), |(names, values), header| {
            (names + header.key.len(), values + header.value.map_or(0, <[u8]>::len))
        });
        let mut copy = Self {
            names: String::with_capacity(names),
            values: Vec::with_capacity(values),
            ends: Vec::with_capacity(headers.count()),
        };
        for header in headers.iter() {
            copy.push(header.key, header.value.unwrap_or_default());
        }
        copy
    }

    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(key, _)| *key == name).map(|(_, value)| value)
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for RecordHeaders {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(headers: I) -> Self {
        let mut all = Self::default();
        for (name, value) in headers {
            all.push(name, value);
        }
        all
    }
}

impl Record {
    /// Copies a record out of any rdkafka message.
    pub fn from_message(message: &impl Message) -> Self {
        Self::from_message_of(message, message.topic())
    }

    /// Copies a record out of an rdkafka message read from `topic` (the message's topic, or its name as the
    /// projection knows it).
    pub(crate) fn from_message_of(message: &impl Message, topic: &str) -> Self {
        let headers = message.headers().map(RecordHeaders::copy_of).unwrap_or_default();
        Self {
            topic: topic.to_owned(),
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
                .iter()
                .map(|(name, value)| (*name, value.as_bytes()))
                .collect(),
            payload: Some(serde_json::to_vec(&event.payload).expect("a JSON value serializes")),
        }
    }

    /// Its topic (as the projection names it) and partition.
    pub fn partition_key(&self) -> Partition {
        (self.topic.clone(), self.partition)
    }

    /// The same, borrowed: for what looks at every record of a batch.
    pub fn partition_ref(&self) -> (&str, i32) {
        (&self.topic, self.partition)
    }

    /// The value of header `name`, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| std::str::from_utf8(value).ok())
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

    /// The trace context the record carries in its `traceparent` header, if a valid one.
    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::from_headers(|name| self.header(name))
    }

    /// The event's metadata from the CloudEvents headers.
    pub fn metadata(&self) -> Result<ReceivedMetadata, InvalidHeaders> {
        ReceivedMetadata::from_headers(self.headers.iter())
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
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    fn with_id(id: &str) -> Record {
        Record {
            topic: "widgets".into(),
            partition: 0,
            offset: 0,
            key: None,
            headers: [(cloudevents::ID, id.as_bytes())].into_iter().collect(),
            payload: None,
        }
    }

    #[test]
    fn headers_keep_every_name_and_value_in_order() {
        let headers: RecordHeaders =
            [("ce_id", &b"1"[..]), ("empty", b""), ("ce_type", b"Created"), ("ce_id", b"2")]
                .into_iter()
                .collect();

        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("ce_id", &b"1"[..]), ("empty", b""), ("ce_type", b"Created"), ("ce_id", b"2")]
        );
        assert_eq!(headers.get("ce_type"), Some(&b"Created"[..]));
        assert_eq!(headers.get("ce_id"), Some(&b"1"[..]), "the first of a repeated name");
        assert_eq!(headers.get("empty"), Some(&b""[..]));
        assert_eq!(headers.get("missing"), None);
        assert_eq!(RecordHeaders::default().iter().count(), 0);
    }

    #[test]
    fn a_consumed_message_s_headers_are_copied_into_buffers_of_their_size() {
        let consumed = OwnedHeaders::new()
            .insert(Header { key: "ce_id", value: Some("1") })
            .insert(Header { key: "no value", value: None::<&[u8]> })
            .insert(Header { key: "ce_type", value: Some(&b"Created"[..]) });

        let copy = RecordHeaders::copy_of(&consumed);

        assert_eq!(
            copy.iter().collect::<Vec<_>>(),
            [("ce_id", &b"1"[..]), ("no value", b""), ("ce_type", b"Created")]
        );
        assert_eq!(
            (copy.names.capacity(), copy.values.capacity(), copy.ends.capacity()),
            (copy.names.len(), copy.values.len(), copy.ends.len()),
            "each buffer allocated once, at its size"
        );
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
