//! The W3C trace context (`traceparent`, `tracestate`) an event carries from the request that caused it.
//!
//! The gateway accepts a `traceparent` header or starts a trace; services read it from gRPC metadata, store it in
//! the outbox row, and the relay sends it on as a Kafka header, so a consumer's work joins the same trace.
//!
//! Whatever a caller sends, what is kept is bounded, as the W3C Trace Context specification allows: a
//! `traceparent` is parsed per its version and kept as the version-00 value of its first four fields (55
//! characters), and a `tracestate` is kept only if well formed, with at most 32 list members and 512 characters
//! (members beyond are dropped, longest-first then from the end, as the specification's truncation rules ask).

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A validated W3C trace context. `traceparent` is always a version-00 value; `tracestate` is well formed and
/// within the specification's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedTraceContext")]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

/// The serialized form, checked by [`TraceContext::parse`] on the way in, so that a stored or received context is
/// held to the same rules as a header.
#[derive(Deserialize)]
struct UncheckedTraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TryFrom<UncheckedTraceContext> for TraceContext {
    type Error = InvalidTraceparent;

    fn try_from(unchecked: UncheckedTraceContext) -> Result<Self, Self::Error> {
        Self::parse(&unchecked.traceparent, unchecked.tracestate.as_deref())
    }
}

/// A `traceparent` value that is not `{version}-{trace-id}-{parent-id}-{flags}` in lowercase hex. It holds at most
/// the first 64 characters of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid W3C traceparent")]
pub struct InvalidTraceparent(pub String);

impl InvalidTraceparent {
    fn of(traceparent: &str) -> Self {
        // An error repeats a bounded part of what the caller sent, never all of it.
        let mut shown: String = traceparent.chars().take(64).collect();
        if shown.len() < traceparent.len() {
            shown.push('…');
        }
        Self(shown)
    }
}

/// The most list members a `tracestate` may carry (W3C Trace Context, "tracestate Header Field Values").
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The most characters of `tracestate` kept, commas included: the length every vendor must propagate.
pub const MAX_TRACESTATE_CHARS: usize = 512;
/// Members longer than this are the first dropped when a `tracestate` is too long.
const LONG_TRACESTATE_MEMBER_CHARS: usize = 128;

impl TraceContext {
    /// The metadata/header name of the trace parent.
    pub const TRACEPARENT: &'static str = "traceparent";
    /// The metadata/header name of the vendor trace state.
    pub const TRACESTATE: &'static str = "tracestate";

    /// Validates a received `traceparent` per its version, and keeps `tracestate` when it is well formed, bounded
    /// (see [`bounded_tracestate`]).
    ///
    /// Version 00 has exactly four fields. A higher version may append fields: its first four are read as version
    /// 00 defines them, the rest ignored, and the context is kept as version 00 with only the sampled flag, as the
    /// specification asks of a vendor that receives a version it does not know. Version `ff` is invalid.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, InvalidTraceparent> {
        let invalid = || InvalidTraceparent::of(traceparent);
        // At most five pieces: the fifth, if any, is everything a later version appends.
        let mut fields = traceparent.splitn(5, '-');
        let (Some(version), Some(trace_id), Some(parent_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid());
        };
        let appended = fields.next().is_some();
        let valid = is_lower_hex(version, 2)
            && version != "ff"
            && (version != "00" || !appended)
            && is_lower_hex(trace_id, 32)
            && !is_all_zero(trace_id)
            && is_lower_hex(parent_id, 16)
            && !is_all_zero(parent_id)
            && is_lower_hex(flags, 2);
        if !valid {
            return Err(invalid());
        }
        let flags = if version == "00" {
            flags.to_owned()
        } else {
            // Other bits may mean something else in a later version; only `sampled` is known to keep its place.
            let sampled = u8::from_str_radix(flags, 16).map_err(|_| invalid())? & 0x01;
            format!("{sampled:02x}")
        };
        Ok(Self {
            traceparent: format!("00-{trace_id}-{parent_id}-{flags}"),
            tracestate: tracestate.and_then(bounded_tracestate),
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

    /// The same trace, flags and state with a new parent id, for the next hop.
    pub fn child(&self) -> Self {
        let parent_id: u64 = rand::rng().random_range(1..=u64::MAX);
        Self {
            traceparent: format!("00-{}-{parent_id:016x}-{}", self.trace_id(), self.flags()),
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
        // `traceparent` is always version 00: `00-{32}-{16}-{2}`.
        &self.traceparent[3..35]
    }

    /// The 16-hex-digit id of the span this context continues from (the caller's span).
    pub fn parent_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// The two-hex-digit trace flags.
    pub fn flags(&self) -> &str {
        &self.traceparent[53..55]
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent)
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// A received `tracestate` as it may be kept and passed on: its list members (`key=value`, empty members and the
/// blanks around commas dropped), the first [`MAX_TRACESTATE_MEMBERS`] only, then cut to
/// [`MAX_TRACESTATE_CHARS`] by dropping members longer than 128 characters and then members from the end.
/// `None` when nothing is left, or when a kept member is malformed or repeats a key: the specification forbids
/// passing on a `tracestate` that does not parse.
pub fn bounded_tracestate(received: &str) -> Option<String> {
    // Lazily, so a huge header costs no more than its first 32 members.
    let members: Vec<&str> = received
        .split(',')
        .map(|member| member.trim_matches([' ', '\t']))
        .filter(|member| !member.is_empty())
        .take(MAX_TRACESTATE_MEMBERS)
        .collect();
    let mut keys = Vec::with_capacity(members.len());
    for member in &members {
        let (key, value) = member.split_once('=')?;
        if !is_tracestate_key(key) || !is_tracestate_value(value) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
    }
    let members = within_length(members);
    (!members.is_empty()).then(|| members.join(","))
}

/// `members`, cut to [`MAX_TRACESTATE_CHARS`] joined with commas: long members go first, then the last ones.
fn within_length(mut members: Vec<&str>) -> Vec<&str> {
    let length =
        |members: &[&str]| members.iter().map(|m| m.len()).sum::<usize>() + members.len().saturating_sub(1);
    while length(&members) > MAX_TRACESTATE_CHARS {
        match members.iter().rposition(|member| member.len() > LONG_TRACESTATE_MEMBER_CHARS) {
            Some(long) => members.remove(long),
            None => members.pop().expect("a list over the limit is not empty"),
        };
    }
    members
}

/// `simple-key` (`lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`) or `multi-tenant-key`
/// (`tenant-id "@" system-id`).
fn is_tracestate_key(key: &str) -> bool {
    let rest_ok =
        |s: &str| s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'));
    let starts = |s: &str, digit_too: bool| {
        s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || (digit_too && b.is_ascii_digit()))
    };
    match key.split_once('@') {
        None => key.len() <= 256 && starts(key, false) && rest_ok(key),
        Some((tenant, system)) => {
            tenant.len() <= 241
                && starts(tenant, true)
                && rest_ok(tenant)
                && system.len() <= 14
                && starts(system, false)
                && rest_ok(system)
        }
    }
}

/// `0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters, neither `,` nor `=`, not ending in a space.
fn is_tracestate_value(value: &str) -> bool {
    (1..=256).contains(&value.len())
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
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
        assert_eq!(context.parent_id(), "00f067aa0ba902b7");
        assert_eq!(context.flags(), "01");
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
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x-extra",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_higher_version_is_read_from_its_first_four_fields_and_kept_as_version_00() {
        // Given a version this code does not know, with a field appended and flags beyond `sampled`
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-holds";

        // When
        let context = TraceContext::parse(future, None).unwrap();
        let child = context.child();

        // Then the flags come from the fourth field, not the last, and only the sampled bit is kept
        assert_eq!(context.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(child.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(child.traceparent().ends_with("-01"), "{}", child.traceparent());
        assert!(TraceContext::parse(child.traceparent(), None).is_ok());
        let unsampled = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-01";
        assert!(TraceContext::parse(unsampled, None).unwrap().child().traceparent().ends_with("-00"));
    }

    #[test]
    fn a_huge_invalid_traceparent_is_reported_in_part() {
        let huge = format!("00-{}", "x".repeat(1_000_000));

        let error = TraceContext::parse(&huge, None).unwrap_err();

        assert_eq!(error.0.chars().count(), 65);
    }

    #[test]
    fn a_tracestate_keeps_at_most_32_members() {
        let members: Vec<String> = (0..1_000).map(|i| format!("v{i}=x")).collect();

        let context = TraceContext::parse(EXAMPLE, Some(&members.join(","))).unwrap();

        assert_eq!(context.tracestate(), Some(members[..32].join(",").as_str()));
    }

    #[test]
    fn a_tracestate_is_cut_to_512_characters_long_members_first_then_from_the_end() {
        // Given 20 members of 29 characters (599 with commas) and, in the middle, one of 200 characters
        let short: Vec<String> = (0..20).map(|i| format!("vendor{i:02}={}", "a".repeat(20))).collect();
        let long = format!("long={}", "b".repeat(195));
        let mut members = short.clone();
        members.insert(10, long.clone());

        // When
        let kept = bounded_tracestate(&members.join(",")).unwrap();

        // Then the long member went first, then members from the end until the rest fit
        assert!(kept.len() <= MAX_TRACESTATE_CHARS, "{}", kept.len());
        assert!(!kept.contains(&long));
        assert_eq!(kept, short[..17].join(","));
    }

    #[test]
    fn a_malformed_tracestate_is_dropped_and_blanks_around_members_are_not_kept() {
        assert_eq!(
            bounded_tracestate(" rojo=00f067aa0ba902b7 ,\t, congo=t61rcWkgMzE "),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_owned())
        );
        assert_eq!(
            bounded_tracestate("tenant@system=1,a-b_c*d/e=2"),
            Some("tenant@system=1,a-b_c*d/e=2".into())
        );
        for malformed in [
            "Upper=1",
            "no-value",
            "k=",
            "k=a=b",
            "k=1,k=2",
            "1leading-digit=x",
            "tenant@1system=x",
            "k=\u{7f}",
        ] {
            assert_eq!(bounded_tracestate(malformed), None, "{malformed:?}");
        }
        assert_eq!(bounded_tracestate(" , "), None);
        let context = TraceContext::parse(EXAMPLE, Some("Bad Key=1")).unwrap();
        assert_eq!(context.tracestate(), None, "a bad tracestate does not spoil the traceparent");
    }

    #[test]
    fn a_deserialized_context_is_held_to_the_same_rules() {
        let stored = serde_json::json!({ "traceparent": EXAMPLE, "tracestate": "k=1,k=2" });
        let invalid = serde_json::json!({ "traceparent": "short", "tracestate": null });

        let context: TraceContext = serde_json::from_value(stored).unwrap();

        assert_eq!(context.tracestate(), None);
        assert!(serde_json::from_value::<TraceContext>(invalid).is_err());
        let round_trip: TraceContext =
            serde_json::from_value(serde_json::to_value(&context).unwrap()).unwrap();
        assert_eq!(round_trip, context);
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
