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
async fn malformed_bodies_answer_a_graphql_error_in_json_with_a_stable_code() {
    let app = spawn_app().await;

    for body in
        ["{bad", r#"{"query": 1}"#, r#"{"variables": {}}"#, "[]", "", r#"{"query": "{ accounts { id } }""#]
    {
        let response = app
            .http
            .post(format!("{}/graphql", app.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST, "{body}");
        assert!(response.headers()["content-type"].to_str().unwrap().contains("json"), "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&answer), ["BAD_REQUEST"], "{body}: {answer:#}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(!message.contains("Error(") && !message.contains("InvalidRequest"), "{message}");
    }
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
    assert_eq!(error_codes(&body), ["BAD_REQUEST"]);
    let accounts = app.client.data("{ accounts { id } }", json!({})).await;
    assert_eq!(accounts["accounts"], json!([]));
}

#[tokio::test]
async fn the_playground_loads_everything_from_the_gateway_itself() {
    let app = spawn_app().await;

    let response = app.http.get(format!("{}/playground", app.base_url)).send().await.unwrap();

    assert!(response.status().is_success());
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    let references: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.split(attribute).skip(1))
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .filter(|reference| *reference != "data:,") // no favicon: nothing to fetch
        .collect();
    assert_eq!(references.len(), 5, "a stylesheet and four scripts: {page}");
    for reference in references {
        assert!(reference.starts_with("/playground/"), "{reference} is not served by the gateway");
        let asset = app.http.get(format!("{}{reference}", app.base_url)).send().await.unwrap();
        assert!(asset.status().is_success(), "{reference}: {}", asset.status());
        let media_type = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let body = asset.text().await.unwrap();
        if reference.ends_with(".css") {
            assert!(media_type.starts_with("text/css"), "{reference}: {media_type}");
        } else {
            assert!(media_type.starts_with("text/javascript"), "{reference}: {media_type}");
        }
        if reference.ends_with("mount.js") {
            assert!(body.contains("'/graphql'"), "{body}");
        } else {
            assert!(body.len() > 10_000, "{reference} is only {} bytes", body.len());
        }
    }
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
