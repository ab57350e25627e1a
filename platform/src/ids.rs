//! Conversions every gRPC edge needs: ids from strings, timestamps to and from protobuf.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::FieldViolation;

/// Parses the id in request field `field`, or says which field holds something that is not a UUID.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    Uuid::try_parse(value.trim())
        .map_err(|_| FieldViolation::new(field, format!("`{value}` is not a valid UUID")))
}

/// A timestamp as protobuf carries it.
pub fn to_timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9 for a normalized DateTime, so the cast cannot truncate.
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf timestamp as a `DateTime`, or `None` when it is out of range.
pub fn from_timestamp(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_and_violations_name_the_field() {
        let id = Uuid::now_v7();

        assert_eq!(parse_id("account_id", &id.to_string()), Ok(id));
        assert_eq!(parse_id("account_id", "42").unwrap_err().field, "account_id");
    }

    #[test]
    fn timestamps_round_trip() {
        let at = shop_events::envelope::now();

        assert_eq!(from_timestamp(&to_timestamp(at)), Some(at));
    }
}
