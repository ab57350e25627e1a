use tonic::Code;

use crate::helpers::spawn_app;

#[tokio::test]
async fn get_account_returns_the_stored_account() {
    let app = spawn_app().await;
    let created = app.client.post_account("Ada").await.unwrap();

    let read = app.client.get_account(&created.id).await.unwrap();

    assert_eq!(read, created);
}

#[tokio::test]
async fn get_account_is_not_found_for_an_unknown_id() {
    let app = spawn_app().await;

    let status = app.client.get_account(&uuid::Uuid::now_v7().to_string()).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn get_account_rejects_an_id_that_is_not_a_uuid() {
    let app = spawn_app().await;

    let status = app.client.get_account("42").await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("id"), "{}", status.message());
}

#[tokio::test]
async fn get_accounts_pages_through_accounts_oldest_first() {
    let app = spawn_app().await;
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("customer {i}");
        app.client.post_account(&name).await.unwrap();
        names.push(name);
    }

    let first = app.client.get_accounts(0, 2).await.unwrap();
    let rest = app.client.get_accounts(2, 0).await.unwrap();

    let listed: Vec<_> = first.iter().chain(&rest).map(|a| a.name.clone()).collect();
    assert_eq!(listed, names);
    assert_eq!(first.len(), 2);
}

#[tokio::test]
async fn get_accounts_rejects_a_page_above_the_maximum() {
    let app = spawn_app().await;

    let status = app.client.get_accounts(0, 101).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
}
