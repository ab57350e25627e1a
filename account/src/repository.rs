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
    owner: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "id, name, version, created_at, owner";

/// The unique index that keeps a subject to one account.
const OWNER_INDEX: &str = "accounts_owner";

impl TryFrom<AccountRow> for Account {
    type Error = sqlx::Error;

    fn try_from(row: AccountRow) -> Result<Self, Self::Error> {
        let name = AccountName::parse("name", &row.name).map_err(|violation| {
            sqlx::Error::Decode(format!("stored account {} is invalid: {violation}", row.id).into())
        })?;
        Ok(Self { id: row.id, name, version: row.version, created_at: row.created_at, owner: row.owner })
    }
}

#[tracing::instrument(skip_all, fields(account_id = %account.id), err)]
/// Stores a new account. Fails with a unique violation that [`is_owner_taken`] recognises when its owner already
/// owns another.
pub async fn insert_account(connection: &mut PgConnection, account: &Account) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    )))
    .bind(account.id)
    .bind(account.name.as_str())
    .bind(account.version)
    .bind(account.created_at)
    .bind(&account.owner)
    .execute(connection)
    .await?;
    Ok(())
}

/// Whether `error` says that the account's owner already owns an account.
pub fn is_owner_taken(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| {
        error.kind() == sqlx::error::ErrorKind::UniqueViolation && error.constraint() == Some(OWNER_INDEX)
    })
}

/// The account with `id`, if there is one.
pub async fn find_account(connection: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<AccountRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1")))
            .bind(id)
            .fetch_optional(connection)
            .await?;
    row.map(Account::try_from).transpose()
}

/// One page of accounts, oldest first; only those of `owner`, if given.
pub async fn list_accounts(
    connection: &mut PgConnection,
    page: Page,
    owner: Option<&str>,
) -> Result<Vec<Account>, sqlx::Error> {
    let rows: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts
         WHERE ($3::uuid IS NULL OR id > $3) AND ($4::text IS NULL OR owner = $4)
         ORDER BY id OFFSET $1 LIMIT $2"
    )))
    .bind(page.skip)
    .bind(page.take)
    .bind(page.after)
    .bind(owner)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(Account::try_from).collect()
}

/// The first `limit` accounts whose id is above `after` (from the first with `None`), in id order, held `FOR SHARE`
/// until the transaction ends, so that no change of them commits before it does.
pub async fn share_accounts_after(
    connection: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Account>, sqlx::Error> {
    let rows: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2 FOR SHARE"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(Account::try_from).collect()
}
