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
    /// The subject of the identity that opened the account, which owns it; absent for an account opened without
    /// one. Added after v1 was published: an event without it is an unowned account, and an account without an
    /// owner is written without the field, as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Account {
    /// The longest owner (a token subject) the account service accepts.
    pub const MAX_OWNER_CHARS: usize = 255;

    /// The account service's rules: an id, a name of 1–100 characters without control characters, a version of
    /// 1 or more, and an owner, if any, of 1–255 visible ASCII characters or spaces (a subject as the gateway
    /// sends it).
    pub fn check_invariants(&self) -> Result<(), String> {
        invariants::id("account.id", self.id)?;
        invariants::positive("account.version", self.version)?;
        invariants::text("account.name", &self.name, 100, true, &[])?;
        match &self.owner {
            Some(owner)
                if owner.is_empty()
                    || owner.len() > Self::MAX_OWNER_CHARS
                    || !owner.bytes().all(|byte| byte == b' ' || byte.is_ascii_graphic()) =>
            {
                Err(format!(
                    "account.owner must be 1 to {} visible ASCII characters or spaces",
                    Self::MAX_OWNER_CHARS
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `shop.account.created.v1`: an account was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountCreated {
    pub account: Account,
}

/// `shop.account.republished.v1`: nothing happened to the account; this is its current state, appended again by
/// `account republish` at the version it already has ([`republish`](crate::republish)). Apply it like any other
/// event, by version: a consumer that holds this version ignores it, one that lost the account's history gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountRepublished {
    pub account: Account,
}

domain_event!(AccountCreated, AggregateType::ACCOUNT, "shop.account.created" v 1, account);
domain_event!(AccountRepublished, AggregateType::ACCOUNT, "shop.account.republished" v 1, account);

event_family! {
    /// Every event on the accounts topic.
    pub enum AccountEvent {
        Created(AccountCreated),
        Republished(AccountRepublished),
    }
}

impl AccountEvent {
    /// The account's state after the event, whichever event it is.
    pub fn account(&self) -> &Account {
        match self {
            Self::Created(AccountCreated { account }) | Self::Republished(AccountRepublished { account }) => {
                account
            }
        }
    }

    /// The same, owned.
    pub fn into_account(self) -> Account {
        match self {
            Self::Created(AccountCreated { account }) | Self::Republished(AccountRepublished { account }) => {
                account
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, TraceContext, envelope::now, topics};

    #[test]
    fn account_created_round_trips_through_json() {
        let event = AccountCreated {
            account: Account {
                id: Uuid::now_v7(),
                name: "Ada".into(),
                version: 1,
                created_at: now(),
                owner: Some("auth0|ada".into()),
            },
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
    fn an_account_without_an_owner_reads_and_writes_as_before_owners_existed() {
        let id = Uuid::now_v7();
        let v1 = serde_json::json!({
            "account": { "id": id, "name": "Ada", "version": 1, "created_at": "2026-11-21T09:00:00Z" }
        });

        let event = AccountEvent::decode("shop.account.created.v1", v1.to_string().as_bytes()).unwrap();

        let AccountEvent::Created(created) = event else { panic!("an account creation, not {event:?}") };
        assert_eq!(created.account.owner, None);
        assert_eq!(serde_json::to_value(&created).unwrap(), v1);
    }

    #[test]
    fn a_republished_account_carries_the_same_state_at_the_same_version_under_its_own_type() {
        let account =
            Account { id: Uuid::now_v7(), name: "Ada".into(), version: 1, created_at: now(), owner: None };
        let created = Envelope::new(&AccountCreated { account: account.clone() }, None);

        let republished = Envelope::new(&AccountRepublished { account: account.clone() }, None);

        assert_eq!(republished.event_type, "shop.account.republished.v1");
        assert_eq!(republished.topic, created.topic);
        assert_eq!(republished.payload, created.payload);
        assert_eq!(
            (republished.aggregate_id, republished.aggregate_version),
            (created.aggregate_id, created.aggregate_version)
        );
        let payload = serde_json::to_vec(&republished.payload).unwrap();
        let decoded = AccountEvent::decode(&republished.event_type, &payload).unwrap();
        assert_eq!(decoded.account(), &account);
        assert!(matches!(decoded, AccountEvent::Republished(_)));
    }

    #[test]
    fn an_account_event_no_account_service_could_write_is_refused_at_decode_time() {
        let owned = |id: Uuid, name: &str, version: i64, owner: Option<&str>| AccountCreated {
            account: Account {
                id,
                name: name.into(),
                version,
                created_at: now(),
                owner: owner.map(Into::into),
            },
        };
        let account = |id: Uuid, name: &str, version: i64| owned(id, name, version, None);
        let forged = [
            account(Uuid::nil(), "Ada", 1),
            account(Uuid::now_v7(), "", 1),
            account(Uuid::now_v7(), &"a".repeat(101), 1),
            account(Uuid::now_v7(), "A\0da", 1),
            account(Uuid::now_v7(), "Ada", 0),
            owned(Uuid::now_v7(), "Ada", 1, Some("")),
            owned(Uuid::now_v7(), "Ada", 1, Some("ada\n")),
            owned(Uuid::now_v7(), "Ada", 1, Some(&"a".repeat(256))),
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
