//! The account service's SQL. Every function takes the connection (or transaction) to run on; the service decides
//! the transaction boundaries.

use chrono::{DateTime, Utc};
use shop_platform::pagination::Page;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Account, AccountName};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    name: String,
    version: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = sqlx::Error;

    fn try_from(row: AccountRow) -> Result<Self, Self::Error> {
        let name = AccountName::parse("name", &row.name).map_err(|violation| {
            sqlx::Error::Decode(format!("stored account {} is invalid: {violation}", row.id).into())
        })?;
        Ok(Self { id: row.id, name, version: row.version, created_at: row.created_at })
    }
}

#[tracing::instrument(skip_all, fields(account_id = %account.id), err)]
pub async fn insert_account(connection: &mut PgConnection, account: &Account) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO accounts (id, name, version, created_at) VALUES ($1, $2, $3, $4)")
        .bind(account.id)
        .bind(account.name.as_str())
        .bind(account.version)
        .bind(account.created_at)
        .execute(connection)
        .await?;
    Ok(())
}

/// The account with `id`, if there is one.
pub async fn find_account(connection: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<AccountRow> =
        sqlx::query_as("SELECT id, name, version, created_at FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(connection)
            .await?;
    row.map(Account::try_from).transpose()
}

/// One page of accounts, oldest first.
pub async fn list_accounts(connection: &mut PgConnection, page: Page) -> Result<Vec<Account>, sqlx::Error> {
    let rows: Vec<AccountRow> = sqlx::query_as(
        "SELECT id, name, version, created_at FROM accounts WHERE $3::uuid IS NULL OR id > $3
         ORDER BY id OFFSET $1 LIMIT $2",
    )
    .bind(page.skip)
    .bind(page.take)
    .bind(page.after)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(Account::try_from).collect()
}
