//! Conversions every gRPC edge needs: ids from strings, timestamps to and from protobuf.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{FieldViolation, error::echo};

/// Parses the id in request field `field`, or says which field holds something that is not a UUID (repeating at
/// most the start of it: see [`echo`]).
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    Uuid::try_parse(value.trim())
        .map_err(|_| FieldViolation::new(field, format!("`{}` is not a valid UUID", echo(value))))
}

/// Parses the list of ids in request field `field` (`ids[3]` names the fourth). More than `max` ids are refused
/// before any is parsed, so neither the work nor the error grows with what the caller sent.
pub fn parse_ids(field: &str, values: &[String], max: usize) -> Result<Vec<Uuid>, Vec<FieldViolation>> {
    if values.len() > max {
        return Err(vec![FieldViolation::new(field, format!("must hold at most {max} ids"))]);
    }
    let mut violations = Vec::new();
    let ids = values
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            parse_id(&format!("{field}[{i}]"), value).map_err(|v| violations.push(v)).ok()
        })
        .collect();
    if violations.is_empty() { Ok(ids) } else { Err(violations) }
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
    fn a_list_of_ids_is_bounded_before_it_is_parsed() {
        let id = Uuid::now_v7();
        let empty_ids = vec![String::new(); 2_000_000];

        assert_eq!(parse_ids("ids", &[id.to_string()], 1), Ok(vec![id]));
        assert_eq!(parse_ids("ids", &empty_ids, 1_000).unwrap_err().len(), 1);
        let fields: Vec<_> = parse_ids("ids", &[id.to_string(), "x".into()], 2)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["ids[1]"]);
    }

    #[test]
    fn a_huge_invalid_id_is_echoed_only_in_part() {
        let violation = parse_id("id", &"7".repeat(1_000_000)).unwrap_err();

        assert_eq!(violation.description, format!("`{}…` is not a valid UUID", "7".repeat(64)));
    }

    #[test]
    fn timestamps_round_trip() {
        let at = shop_events::envelope::now();

        assert_eq!(from_timestamp(&to_timestamp(at)), Some(at));
    }
}
