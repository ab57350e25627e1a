use tonic::Code;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn get_order_returns_the_stored_order() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let placed = app.client.post_order(&account, &[(&kettle, 1)]).await.unwrap();

    let read = app.client.get_order(&placed.id).await.unwrap();

    assert_eq!(read, placed);
}

#[tokio::test]
async fn get_order_is_not_found_for_an_unknown_id() {
    let app = spawn_app().await;

    let status = app.client.get_order(&Uuid::now_v7().to_string()).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn an_accounts_orders_come_newest_first() {
    let app = spawn_app().await;
    let (account, kettle, mug) = app.seed().await;
    let first = app.client.post_order(&account, &[(&kettle, 1)]).await.unwrap();
    let second = app.client.post_order(&account, &[(&mug, 1)]).await.unwrap();

    let orders = app.client.get_orders_for_account(&account).await.unwrap();

    assert_eq!(orders, [second, first]);
}

#[tokio::test]
async fn the_orders_of_several_accounts_come_in_one_call() {
    let app = spawn_app().await;
    let (ada, kettle, mug) = app.seed().await;
    let grace = app.accounts.post_account("Grace").await.unwrap().id;
    let nobody = app.accounts.post_account("Nobody").await.unwrap().id;
    app.client.post_order(&ada, &[(&kettle, 1)]).await.unwrap();
    app.client.post_order(&grace, &[(&mug, 1)]).await.unwrap();
    app.client.post_order(&ada, &[(&mug, 2)]).await.unwrap();

    let orders = app.client.get_orders_for_accounts(&[&ada, &grace, &nobody]).await.unwrap();

    let owners: Vec<_> = orders.iter().map(|o| o.account_id.as_str()).collect();
    assert_eq!(owners, [ada.as_str(), grace.as_str(), ada.as_str()]);
    assert!(orders.iter().all(|o| !o.lines.is_empty()));
}

#[tokio::test]
async fn malformed_account_ids_are_invalid() {
    let app = spawn_app().await;

    let status = app.client.get_orders_for_accounts(&["nope"]).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("account_ids[0]"), "{}", status.message());
}
