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

    /// Opens an account and records `AccountCreated` in the outbox, in one transaction.
    #[tracing::instrument(skip_all, fields(account_id))]
    pub async fn open_account(
        &self,
        name: AccountName,
        trace: &TraceContext,
    ) -> Result<Account, ServiceError> {
        let (account, created) = Account::open(name);
        tracing::Span::current().record("account_id", tracing::field::display(account.id));

        let mut transaction = self.pool.begin().await?;
        repository::insert_account(&mut transaction, &account).await?;
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

    pub async fn accounts(&self, page: Page) -> Result<Vec<Account>, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        Ok(repository::list_accounts(&mut connection, page).await?)
    }
}
