//! Accounts bound to the identity that opened them: the caller's identity metadata makes its subject the owner,
//! one account per subject.

use shop_platform::identity::{Identity, ROLE, Role, SUBJECT};
use shop_proto::account::v1::{GetAccountsRequest, PostAccountRequest};
use shop_testkit::{count_rows, outbox_rows};
use tonic::{Code, Request, metadata::MetadataValue};
use uuid::Uuid;

use crate::helpers::spawn_app;

fn customer(subject: &str) -> Identity {
    Identity { subject: subject.to_owned(), role: Role::Customer }
}

#[tokio::test]
async fn post_account_with_an_identity_makes_its_subject_the_owner_in_the_answer_the_table_and_the_event() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let account = app.client.post_account_as("Ada", &customer("auth0|ada")).await.unwrap();

    // Assert
    assert_eq!(account.owner.as_deref(), Some("auth0|ada"));
    assert_eq!(app.client.get_account(&account.id).await.unwrap(), account);
    let id: Uuid = account.id.parse().unwrap();
    let owner: Option<String> = sqlx::query_scalar("SELECT owner FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some("auth0|ada"));
    assert_eq!(outbox_rows(&app.database.pool).await[0].payload["account"]["owner"], "auth0|ada");
}

#[tokio::test]
async fn post_account_without_an_identity_opens_an_account_nobody_owns() {
    let app = spawn_app().await;

    let account = app.client.post_account("Ada").await.unwrap();

    assert_eq!(account.owner, None);
    let payload = &outbox_rows(&app.database.pool).await[0].payload;
    assert!(payload["account"].get("owner").is_none(), "written as before owners existed: {payload}");
}

#[tokio::test]
async fn a_second_account_for_the_same_subject_is_already_exists_and_writes_nothing() {
    // Arrange: a customer with an account, and staff with one (whoever signs up owns what they open).
    let app = spawn_app().await;
    let first = app.client.post_account_as("Ada", &customer("auth0|ada")).await.unwrap();
    let staff = Identity { subject: "ops|7".into(), role: Role::Staff };
    app.client.post_account_as("Ops", &staff).await.unwrap();

    // Act
    let again = app.client.post_account_as("Ada again", &customer("auth0|ada")).await.unwrap_err();
    let staff_again = app.client.post_account_as("Ops again", &staff).await.unwrap_err();

    // Assert
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(again.message(), "this identity already has an account");
    assert_eq!(staff_again.code(), Code::AlreadyExists);
    assert_eq!(count_rows(&app.database.pool, "accounts").await, 2);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 2);
    assert_eq!(app.client.get_account(&first.id).await.unwrap().name, "Ada");
}

#[tokio::test]
async fn concurrent_sign_ups_of_one_subject_open_exactly_one_account() {
    let app = spawn_app().await;

    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = app.client.clone();
        attempts
            .spawn(async move { client.post_account_as(&format!("Ada {i}"), &customer("auth0|ada")).await });
    }
    let results = attempts.join_all().await;

    let opened = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(opened, 1, "{results:?}");
    assert!(
        results.iter().filter_map(|result| result.as_ref().err()).all(|s| s.code() == Code::AlreadyExists)
    );
    assert_eq!(count_rows(&app.database.pool, "accounts").await, 1);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 1);
}

#[tokio::test]
async fn post_account_with_malformed_identity_metadata_is_invalid_argument_and_writes_nothing() {
    let app = spawn_app().await;
    let with_metadata = |entries: &[(&'static str, &'static str)]| {
        let mut request = Request::new(PostAccountRequest { name: "Ada".into() });
        for (key, value) in entries {
            request.metadata_mut().insert(*key, MetadataValue::from_static(value));
        }
        request
    };
    let cases = [
        ("a subject without a role", with_metadata(&[(SUBJECT, "auth0|ada")])),
        ("an unknown role", with_metadata(&[(SUBJECT, "auth0|ada"), (ROLE, "admin")])),
        ("an empty subject", with_metadata(&[(SUBJECT, ""), (ROLE, "customer")])),
    ];

    for (case, request) in cases {
        let status = app.client.raw().post_account(request).await.unwrap_err();

        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    }
    assert_eq!(count_rows(&app.database.pool, "accounts").await, 0);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn get_accounts_with_an_owner_lists_only_that_owners_account_and_pages_as_without() {
    // Arrange: an unowned account, Ada's, Grace's.
    let app = spawn_app().await;
    app.client.post_account("Nobody's").await.unwrap();
    let ada = app.client.post_account_as("Ada", &customer("auth0|ada")).await.unwrap();
    app.client.post_account_as("Grace", &customer("auth0|grace")).await.unwrap();
    let list = |owner: &str, skip: u64, after: &str| {
        let request = GetAccountsRequest { skip, take: 0, after: after.to_owned(), owner: owner.to_owned() };
        let mut client = app.client.raw();
        async move { client.get_accounts(request).await.unwrap().into_inner().accounts }
    };

    // Act
    let adas = list("auth0|ada", 0, "").await;
    let strangers = list("auth0|nobody", 0, "").await;
    let past_adas = list("auth0|ada", 1, "").await;
    let after_adas = list("auth0|ada", 0, &ada.id).await;
    let everyone = list("", 0, "").await;

    // Assert
    assert_eq!(adas, [ada]);
    assert!(strangers.is_empty() && past_adas.is_empty() && after_adas.is_empty());
    assert_eq!(everyone.len(), 3);
}
