//! Account events, published on [`topics::ACCOUNTS`](crate::topics::ACCOUNTS) and keyed by account id.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{AggregateType, domain_event, event_family, invariants};

/// An account's full state as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// The account service's rules: an id, a name of 1–100 characters without control characters, a version of
    /// 1 or more.
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::id("account.id", self.id)?;
        invariants::positive("account.version", self.version)?;
        invariants::text("account.name", &self.name, 100, true, &[])
    }
}

/// `shop.account.created.v1`: an account was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountCreated {
    pub account: Account,
}

domain_event!(AccountCreated, AggregateType::ACCOUNT, "shop.account.created" v 1, account);

event_family! {
    /// Every event on the accounts topic.
    pub enum AccountEvent {
        Created(AccountCreated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, TraceContext, envelope::now, topics};

    #[test]
    fn account_created_round_trips_through_json() {
        let event = AccountCreated {
            account: Account { id: Uuid::now_v7(), name: "Ada".into(), version: 1, created_at: now() },
        };
        let envelope = Envelope::new(&event, Some(&TraceContext::new_root()));

        let json = serde_json::to_string(&envelope).unwrap();
        let read: Envelope = serde_json::from_str(&json).unwrap();

        assert_eq!(read, envelope);
        assert_eq!(read.decode::<AccountCreated>().unwrap(), event);
        assert_eq!(read.event_type, "shop.account.created.v1");
        assert_eq!(read.aggregate_type, "account");
        assert_eq!(read.topic, topics::ACCOUNTS);
        assert_eq!((read.aggregate_id, read.aggregate_version), (event.account.id, 1));
        let payload = serde_json::to_vec(&read.payload).unwrap();
        assert_eq!(AccountEvent::decode(&read.event_type, &payload).unwrap(), AccountEvent::Created(event));
    }

    #[test]
    fn an_account_event_no_account_service_could_write_is_refused_at_decode_time() {
        let account = |id: Uuid, name: &str, version: i64| AccountCreated {
            account: Account { id, name: name.into(), version, created_at: now() },
        };
        let forged = [
            account(Uuid::nil(), "Ada", 1),
            account(Uuid::now_v7(), "", 1),
            account(Uuid::now_v7(), &"a".repeat(101), 1),
            account(Uuid::now_v7(), "A\0da", 1),
            account(Uuid::now_v7(), "Ada", 0),
        ];

        assert!(
            AccountEvent::decode(
                "shop.account.created.v1",
                &serde_json::to_vec(&account(Uuid::now_v7(), "Ada", 1)).unwrap()
            )
            .is_ok()
        );
        for event in forged {
            let payload = serde_json::to_vec(&event).unwrap();
            let error = AccountEvent::decode("shop.account.created.v1", &payload).unwrap_err();
            assert!(matches!(error, crate::DecodeError::Invalid(_)), "{event:?}: {error}");
        }
    }
}
