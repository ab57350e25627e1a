//! How an event's metadata travels as Kafka record headers: CloudEvents 1.0 in binary content mode (the value is
//! the payload JSON, the attributes are `ce_`-prefixed headers), plus the aggregate's type and version as
//! CloudEvents extension attributes and the W3C trace context as `traceparent`/`tracestate`.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::{Envelope, TraceContext};

/// Always `1.0`.
pub const SPEC_VERSION: &str = "ce_specversion";
/// The event id (`event_id`).
pub const ID: &str = "ce_id";
/// Where the event comes from: `/shop/{aggregate_type}`.
pub const SOURCE: &str = "ce_source";
/// The versioned event type, such as `shop.order.placed.v1`.
pub const TYPE: &str = "ce_type";
/// The aggregate id (also the record key).
pub const SUBJECT: &str = "ce_subject";
/// When the event occurred, RFC 3339.
pub const TIME: &str = "ce_time";
/// Always `application/json`.
pub const CONTENT_TYPE: &str = "content-type";
/// Extension attribute: the aggregate type (`account`, `product`, `order`).
pub const AGGREGATE_TYPE: &str = "ce_aggregatetype";
/// Extension attribute: the aggregate version after this event (decimal).
pub const AGGREGATE_VERSION: &str = "ce_aggregateversion";

/// The metadata of one event, borrowed from wherever it is stored (an [`Envelope`], an outbox row).
#[derive(Debug, Clone, Copy)]
pub struct EventMetadata<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
}

impl EventMetadata<'_> {
    /// The record headers, in a stable order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (SPEC_VERSION, "1.0".to_owned()),
            (ID, self.event_id.to_string()),
            (SOURCE, format!("/shop/{}", self.aggregate_type)),
            (TYPE, self.event_type.to_owned()),
            (SUBJECT, self.aggregate_id.to_string()),
            (TIME, self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            (CONTENT_TYPE, "application/json".to_owned()),
            (AGGREGATE_TYPE, self.aggregate_type.to_owned()),
            (AGGREGATE_VERSION, self.aggregate_version.to_string()),
        ];
        if let Some(traceparent) = self.traceparent {
            headers.push((TraceContext::TRACEPARENT, traceparent.to_owned()));
        }
        if let Some(tracestate) = self.tracestate {
            headers.push((TraceContext::TRACESTATE, tracestate.to_owned()));
        }
        headers
    }
}

impl Envelope {
    /// The envelope's metadata, for headers.
    pub fn metadata(&self) -> EventMetadata<'_> {
        EventMetadata {
            event_id: self.event_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: self.aggregate_id,
            aggregate_version: self.aggregate_version,
            event_type: &self.event_type,
            occurred_at: self.occurred_at,
            traceparent: self.trace.as_ref().map(TraceContext::traceparent),
            tracestate: self.trace.as_ref().and_then(TraceContext::tracestate),
        }
    }
}

/// An event's metadata as a consumer reads it back from record headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMetadata {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub occurred_at: DateTime<Utc>,
    pub trace: Option<TraceContext>,
}

/// A record whose headers do not carry the metadata of a shop event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}` is {problem}")]
pub struct InvalidHeaders {
    pub header: &'static str,
    pub problem: &'static str,
}

impl ReceivedMetadata {
    /// Reads the metadata from a record's headers (name, value), as the relay wrote them.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, InvalidHeaders> {
        let headers: Vec<(&str, &[u8])> = headers.into_iter().collect();
        let text = |header: &'static str| -> Result<&str, InvalidHeaders> {
            let (_, value) = headers
                .iter()
                .find(|(name, _)| *name == header)
                .ok_or(InvalidHeaders { header, problem: "missing" })?;
            std::str::from_utf8(value).map_err(|_| InvalidHeaders { header, problem: "not UTF-8" })
        };
        let parsed = |header: &'static str| -> Result<_, InvalidHeaders> {
            text(header).map(str::to_owned).map(|value| (header, value))
        };
        let invalid = |header: &'static str| InvalidHeaders { header, problem: "malformed" };

        let (_, event_id) = parsed(ID)?;
        let (_, aggregate_id) = parsed(SUBJECT)?;
        let (_, version) = parsed(AGGREGATE_VERSION)?;
        let (_, time) = parsed(TIME)?;
        let trace = match text(TraceContext::TRACEPARENT) {
            Ok(traceparent) => TraceContext::parse(traceparent, text(TraceContext::TRACESTATE).ok()).ok(),
            Err(_) => None,
        };
        Ok(Self {
            event_id: event_id.parse().map_err(|_| invalid(ID))?,
            event_type: text(TYPE)?.to_owned(),
            aggregate_type: text(AGGREGATE_TYPE)?.to_owned(),
            aggregate_id: aggregate_id.parse().map_err(|_| invalid(SUBJECT))?,
            aggregate_version: version.parse().map_err(|_| invalid(AGGREGATE_VERSION))?,
            occurred_at: DateTime::parse_from_rfc3339(&time).map_err(|_| invalid(TIME))?.with_timezone(&Utc),
            trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        account::{Account, AccountCreated},
        envelope::now,
    };

    #[test]
    fn an_envelope_maps_to_cloudevents_binary_mode_headers() {
        let trace = TraceContext::new_root();
        let id = Uuid::now_v7();
        let event = AccountCreated {
            account: Account { id, name: "Ada".into(), version: 1, created_at: now(), owner: None },
        };
        let envelope = Envelope::new(&event, Some(&trace));

        let headers = envelope.metadata().headers();

        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("ce_specversion"), Some("1.0"));
        assert_eq!(get("ce_id"), Some(envelope.event_id.to_string().as_str()));
        assert_eq!(get("ce_source"), Some("/shop/account"));
        assert_eq!(get("ce_type"), Some("shop.account.created.v1"));
        assert_eq!(get("ce_subject"), Some(id.to_string().as_str()));
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(get("ce_aggregateversion"), Some("1"));
        assert_eq!(get("traceparent"), Some(trace.traceparent()));
        assert_eq!(get("tracestate"), None);
        let time: DateTime<Utc> = get("ce_time").unwrap().parse().unwrap();
        assert_eq!(time, envelope.occurred_at);
    }

    #[test]
    fn headers_read_back_into_the_same_metadata() {
        let trace = TraceContext::new_root();
        let event = AccountCreated {
            account: Account {
                id: Uuid::now_v7(),
                name: "Ada".into(),
                version: 1,
                created_at: now(),
                owner: None,
            },
        };
        let envelope = Envelope::new(&event, Some(&trace));
        let headers = envelope.metadata().headers();

        let received =
            ReceivedMetadata::from_headers(headers.iter().map(|(name, value)| (*name, value.as_bytes())))
                .unwrap();

        assert_eq!(received.event_id, envelope.event_id);
        assert_eq!(received.event_type, "shop.account.created.v1");
        assert_eq!(received.aggregate_type, "account");
        assert_eq!(received.aggregate_id, envelope.aggregate_id);
        assert_eq!(received.aggregate_version, 1);
        assert_eq!(received.occurred_at, envelope.occurred_at);
        assert_eq!(received.trace, Some(trace));
    }

    #[test]
    fn a_record_without_the_shop_headers_is_reported() {
        let error = ReceivedMetadata::from_headers([("ce_id", b"not-a-uuid".as_slice())]).unwrap_err();

        assert_eq!(error.header, "ce_subject");
    }
}
