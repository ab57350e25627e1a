//! Accounts and their rules. No I/O here: everything is unit-tested in place.

mod account;
mod account_name;

pub use account::Account;
pub use account_name::AccountName;
