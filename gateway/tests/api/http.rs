//! The HTTP surface around the schema: GET queries, the playground, health.

use serde_json::{Value, json};

use crate::helpers::{error_codes, spawn_app};

#[tokio::test]
async fn queries_can_be_sent_with_get() {
    let app = spawn_app().await;
    app.client.create_account("Ada").await;

    let response: Value = app
        .http
        .get(format!("{}/graphql", app.base_url))
        .query(&[("query", "{ accounts { name } }")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(response["data"]["accounts"], json!([{ "name": "Ada" }]));
}

#[tokio::test]
async fn mutations_cannot_be_sent_with_get() {
    let app = spawn_app().await;

    let response = app
        .http
        .get(format!("{}/graphql", app.base_url))
        .query(&[("query", r#"mutation { createAccount(account: {name: "Eve"}) { id } }"#)])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    let accounts = app.client.data("{ accounts { id } }", json!({})).await;
    assert_eq!(accounts["accounts"], json!([]));
}

#[tokio::test]
async fn the_playground_is_served() {
    let app = spawn_app().await;

    let response = app.http.get(format!("{}/playground", app.base_url)).send().await.unwrap();

    assert!(response.status().is_success());
    let body = response.text().await.unwrap();
    assert!(body.contains("graphiql") || body.contains("GraphiQL"), "{body}");
    assert!(body.contains("/graphql"));
}

#[tokio::test]
async fn readiness_reports_each_service_and_fails_while_one_is_down() {
    let mut app = spawn_app().await;
    let ready = |app: &crate::helpers::TestApp| app.http.get(format!("{}/health/ready", app.base_url)).send();

    let live = app.http.get(format!("{}/health", app.base_url)).send().await.unwrap();
    let all_up = ready(&app).await.unwrap();
    assert!(live.status().is_success());
    assert!(all_up.status().is_success());
    assert_eq!(
        all_up.json::<Value>().await.unwrap(),
        json!({ "status": "ok", "services": { "account": "serving", "catalog": "serving", "order": "serving" } })
    );

    app.stop_catalog_service().await;
    let degraded = ready(&app).await.unwrap();

    assert_eq!(degraded.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(degraded.json::<Value>().await.unwrap()["services"]["catalog"], "unreachable");
}
