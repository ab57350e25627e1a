//! The account use cases. The service owns the transaction boundary: the account row and its outbox event are
//! committed together or not at all.

use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::{ServiceError, pagination::Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::{Account, AccountName},
    repository,
};

/// The account service's use cases, over its database.
#[derive(Debug, Clone)]
pub struct AccountService {
    pool: PgPool,
}

impl AccountService {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Opens an account, owned by `owner` if given, and records `AccountCreated` in the outbox, in one
    /// transaction. ALREADY_EXISTS when `owner` already owns an account: the database's unique index decides, so
    /// two concurrent sign-ups of one subject open one account, not two.
    #[tracing::instrument(skip_all, fields(account_id))]
    pub async fn open_account(
        &self,
        name: AccountName,
        owner: Option<String>,
        trace: &TraceContext,
    ) -> Result<Account, ServiceError> {
        let (account, created) = Account::open(name, owner);
        tracing::Span::current().record("account_id", tracing::field::display(account.id));

        let mut transaction = self.pool.begin().await?;
        repository::insert_account(&mut transaction, &account).await.map_err(|error| {
            if repository::is_owner_taken(&error) {
                return ServiceError::AlreadyExists("this identity already has an account".into());
            }
            ServiceError::from(error)
        })?;
        outbox::append(&mut transaction, &Envelope::new(&created, Some(trace))).await?;
        transaction.commit().await?;

        tracing::info!(account_id = %account.id, "Opened an account.");
        Ok(account)
    }

    pub async fn account(&self, id: Uuid) -> Result<Account, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        repository::find_account(&mut connection, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("account {id} does not exist")))
    }

    /// A page of accounts, oldest first; only those of `owner`, if given.
    pub async fn accounts(&self, page: Page, owner: Option<&str>) -> Result<Vec<Account>, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        Ok(repository::list_accounts(&mut connection, page, owner).await?)
    }
}
