//! The W3C trace context (`traceparent`, `tracestate`) an event carries from the request that caused it.
//!
//! The gateway accepts a `traceparent` header or starts a trace; services read it from gRPC metadata, store it in
//! the outbox row, and the relay sends it on as a Kafka header, so a consumer's work joins the same trace.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A validated W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

/// A `traceparent` value that is not `{version}-{trace-id}-{parent-id}-{flags}` in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid W3C traceparent")]
pub struct InvalidTraceparent(pub String);

impl TraceContext {
    /// The metadata/header name of the trace parent.
    pub const TRACEPARENT: &'static str = "traceparent";
    /// The metadata/header name of the vendor trace state.
    pub const TRACESTATE: &'static str = "tracestate";

    /// Validates a received `traceparent` (and keeps `tracestate` as it came, as the specification asks).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, InvalidTraceparent> {
        let invalid = || InvalidTraceparent(traceparent.to_owned());
        let parts: Vec<&str> = traceparent.split('-').collect();
        let [version, trace_id, parent_id, flags, ..] = parts[..] else {
            return Err(invalid());
        };
        let is_hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = is_hex(version, 2)
            && version != "ff"
            // Version 00 has exactly four fields; later versions may append more.
            && (version != "00" || parts.len() == 4)
            && is_hex(trace_id, 32)
            && !all_zero(trace_id)
            && is_hex(parent_id, 16)
            && !all_zero(parent_id)
            && is_hex(flags, 2);
        if !valid {
            return Err(invalid());
        }
        Ok(Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// The trace context a caller sent in its `traceparent` and `tracestate` headers (HTTP headers, gRPC metadata,
    /// Kafka headers), read with `header`; `None` when there is none or it is invalid.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let traceparent = header(Self::TRACEPARENT)?;
        Self::parse(traceparent, header(Self::TRACESTATE)).ok()
    }

    /// The caller's trace (see [`from_headers`](Self::from_headers)) continued for this hop, or a new trace when the
    /// caller sent none or an invalid one, as the W3C specification asks.
    pub fn continue_from<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self::from_headers(header).map(|trace| trace.child()).unwrap_or_else(Self::new_root)
    }

    /// Starts a new, sampled trace.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let trace_id: u128 = rng.random_range(1..=u128::MAX);
        let parent_id: u64 = rng.random_range(1..=u64::MAX);
        Self { traceparent: format!("00-{trace_id:032x}-{parent_id:016x}-01"), tracestate: None }
    }

    /// The same trace with a new parent id, for the next hop.
    pub fn child(&self) -> Self {
        let parent_id: u64 = rand::rng().random_range(1..=u64::MAX);
        let mut fields = self.traceparent.splitn(4, '-');
        let (version, trace_id) = (fields.next().unwrap_or("00"), fields.next().unwrap_or_default());
        let flags = self.traceparent.rsplit('-').next().unwrap_or("01");
        Self {
            traceparent: format!("{version}-{trace_id}-{parent_id:016x}-{flags}"),
            tracestate: self.tracestate.clone(),
        }
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The 32-hex-digit trace id, for logs.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept_with_its_tracestate() {
        let context = TraceContext::parse(EXAMPLE, Some("congo=t61rcWkgMzE")).unwrap();

        assert_eq!(context.traceparent(), EXAMPLE);
        assert_eq!(context.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad, None).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_callers_trace_is_continued_and_a_missing_or_invalid_one_replaced() {
        let headers = |traceparent: &'static str| {
            move |name: &str| (name == TraceContext::TRACEPARENT).then_some(traceparent)
        };

        let continued = TraceContext::continue_from(headers(EXAMPLE));
        let replaced = TraceContext::continue_from(headers("not a traceparent"));

        assert_eq!(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(continued.traceparent(), EXAMPLE, "a new parent id for this hop");
        assert_ne!(replaced.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceContext::from_headers(|_| None).is_none());
    }

    #[test]
    fn a_new_root_and_its_child_are_valid_and_share_the_trace_id() {
        let root = TraceContext::new_root();
        let child = root.child();

        assert!(TraceContext::parse(root.traceparent(), None).is_ok());
        assert!(TraceContext::parse(child.traceparent(), None).is_ok());
        assert_eq!(root.trace_id(), child.trace_id());
        assert_ne!(root.traceparent(), child.traceparent());
    }
}
