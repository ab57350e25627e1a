use chrono::{DateTime, Utc};
use shop_events::{account as events, envelope::now};
use uuid::Uuid;

use super::AccountName;

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub name: AccountName,
    /// The aggregate version: 1 when opened.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    /// The subject of the identity that opened the account (an end user signing up), if one did; fixed at opening.
    /// A subject owns at most one account.
    pub owner: Option<String>,
}

impl Account {
    /// Opens a new account, owned by `owner` if given, and returns it with the event that records it.
    pub fn open(name: AccountName, owner: Option<String>) -> (Self, events::AccountCreated) {
        let account = Self { id: Uuid::now_v7(), name, version: 1, created_at: now(), owner };
        let event = events::AccountCreated { account: account.to_event_state() };
        (account, event)
    }

    /// The account as events carry it.
    pub fn to_event_state(&self) -> events::Account {
        events::Account {
            id: self.id,
            name: self.name.as_str().to_owned(),
            version: self.version,
            created_at: self.created_at,
            owner: self.owner.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use shop_events::DomainEvent;

    use super::*;

    #[test]
    fn opening_an_account_records_it_at_version_1() {
        let name = AccountName::parse("name", "Ada").unwrap();

        let (account, event) = Account::open(name, None);

        assert_eq!(account.version, 1);
        assert_eq!(event.aggregate_id(), account.id);
        assert_eq!(event.aggregate_version(), 1);
        assert_eq!(event.account.name, "Ada");
        assert_eq!(event.account.created_at, account.created_at);
        assert_eq!(event.account.owner, None);
    }

    #[test]
    fn an_account_opened_by_an_identity_is_owned_by_it_and_its_event_says_so() {
        let name = AccountName::parse("name", "Ada").unwrap();

        let (account, event) = Account::open(name, Some("auth0|ada".into()));

        assert_eq!(account.owner.as_deref(), Some("auth0|ada"));
        assert_eq!(event.account.owner.as_deref(), Some("auth0|ada"));
    }
}
