use shop_events::TraceContext;
use shop_platform::grpc::traced_request;
use shop_proto::account::v1::PostAccountRequest;
use shop_testkit::{count_rows, outbox_rows};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn post_account_persists_the_account_and_its_created_event_together() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let account = app.client.post_account("Ada Lovelace").await.unwrap();

    // Assert
    let id: Uuid = account.id.parse().unwrap();
    assert_eq!(account.name, "Ada Lovelace");
    assert_eq!(account.version, 1);
    let (name, version): (String, i64) = sqlx::query_as("SELECT name, version FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
    assert_eq!((name.as_str(), version), ("Ada Lovelace", 1));

    let outbox = outbox_rows(&app.database.pool).await;
    assert_eq!(outbox.len(), 1);
    let row = &outbox[0];
    assert_eq!(row.event_type, "shop.account.created.v1");
    assert_eq!(row.aggregate_type, "account");
    assert_eq!(row.aggregate_id, id);
    assert_eq!(row.aggregate_version, 1);
    assert_eq!(row.topic, "shop.accounts.v1");
    let created_at = row.payload["account"]["created_at"].as_str().unwrap();
    assert_eq!(
        row.payload,
        serde_json::json!({
            "account": { "id": id, "name": "Ada Lovelace", "version": 1, "created_at": created_at }
        })
    );
    let created_at: chrono::DateTime<chrono::Utc> = created_at.parse().unwrap();
    assert_eq!(shop_platform::ids::to_timestamp(created_at), account.created_at.unwrap());
}

#[tokio::test]
async fn post_account_trims_the_name() {
    let app = spawn_app().await;

    let account = app.client.post_account("  Grace Hopper\n").await.unwrap();

    assert_eq!(account.name, "Grace Hopper");
    assert_eq!(outbox_rows(&app.database.pool).await[0].payload["account"]["name"], "Grace Hopper");
}

#[tokio::test]
async fn post_account_rejects_an_invalid_name_and_writes_nothing() {
    let app = spawn_app().await;
    let cases = [("", "blank"), ("   ", "whitespace only"), (&*"x".repeat(101), "101 characters")];

    for (name, case) in cases {
        let status = app.client.post_account(name).await.unwrap_err();

        assert_eq!(status.code(), Code::InvalidArgument, "{case}");
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("field violations").field_violations;
        assert_eq!(violations[0].field, "name", "{case}");
    }
    assert_eq!(count_rows(&app.database.pool, "accounts").await, 0);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn the_outbox_row_carries_the_callers_trace() {
    let app = spawn_app().await;
    let trace = TraceContext::new_root();

    app.client
        .raw()
        .post_account(traced_request(PostAccountRequest { name: "Ada".into() }, &trace))
        .await
        .unwrap();

    let traceparent = outbox_rows(&app.database.pool).await[0].traceparent.clone().unwrap();
    let stored = TraceContext::parse(&traceparent, None).unwrap();
    assert_eq!(stored.trace_id(), trace.trace_id());
}
