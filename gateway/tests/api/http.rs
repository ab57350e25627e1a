//! The HTTP surface around the schema: GET queries, the playground, health.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_codes, spawn_app};

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

    let page = load_page(&app, "/playground").await;

    assert!(
        page.policy.contains("default-src 'none'") && page.policy.contains("script-src 'self'"),
        "{page:?}"
    );
    assert_eq!(page.assets.len(), 5, "a stylesheet and four scripts: {page:?}");
    for asset in &page.assets {
        if asset.reference.ends_with("mount.js") {
            assert!(asset.body.contains("'/graphql'"), "{}", asset.body);
        } else {
            assert!(asset.body.len() > 10_000, "{} is only {} bytes", asset.reference, asset.body.len());
        }
    }
}

#[tokio::test]
async fn the_api_reference_loads_everything_from_the_gateway_itself_and_reads_the_openapi_document() {
    let app = spawn_app().await;

    let page = load_page(&app, "/api/v1/reference").await;
    let document = app.http.get(format!("{}/api/v1/openapi.json", app.base_url)).send().await.unwrap();

    for directive in
        ["default-src 'none'", "script-src 'self';", "connect-src 'self';", "img-src 'self' data:;"]
    {
        assert!(page.policy.contains(directive), "{directive} is not in {}", page.policy);
    }
    assert_eq!(
        page.assets.len(),
        3,
        "Swagger UI's stylesheet and bundle, and the script that starts it: {page:?}"
    );
    let init =
        page.assets.iter().find(|asset| asset.reference.ends_with("/init.js")).expect("an init script");
    assert!(init.body.contains("'/api/v1/openapi.json'"), "{}", init.body);
    assert!(init.body.contains("validatorUrl: null"), "no call to validator.swagger.io: {}", init.body);
    for asset in page.assets.iter().filter(|asset| !asset.reference.ends_with("/init.js")) {
        assert!(asset.reference.contains("/swagger-ui-dist-5."), "{} names its version", asset.reference);
        assert!(asset.body.len() > 100_000, "{} is only {} bytes", asset.reference, asset.body.len());
    }
    assert!(document.status().is_success(), "{}", document.status());
    let document: Value = document.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
}

/// A page of the gateway's, as a browser would load it.
#[derive(Debug)]
struct LoadedPage {
    /// Its Content-Security-Policy.
    policy: String,
    /// Every script and stylesheet it references.
    assets: Vec<LoadedAsset>,
}

#[derive(Debug)]
struct LoadedAsset {
    reference: String,
    body: String,
}

/// Loads the page at `path`, then every script and stylesheet it references, checking that each is served by the
/// gateway under `path`, with its media type, and that the versioned ones may be cached for good.
async fn load_page(app: &TestApp, path: &str) -> LoadedPage {
    let response = app.http.get(format!("{}{path}", app.base_url)).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let page = response.text().await.unwrap();
    let references: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.split(attribute).skip(1))
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .filter(|reference| *reference != "data:,") // no favicon: nothing to fetch
        .collect();
    let mut assets = Vec::new();
    for reference in references {
        assert!(reference.starts_with(&format!("{path}/")), "{reference} is not served by the gateway");
        let asset = app.http.get(format!("{}{reference}", app.base_url)).send().await.unwrap();
        assert!(asset.status().is_success(), "{reference}: {}", asset.status());
        let media_type = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let caching = asset.headers()["cache-control"].to_str().unwrap().to_owned();
        if reference.ends_with(".css") {
            assert!(media_type.starts_with("text/css"), "{reference}: {media_type}");
        } else {
            assert!(media_type.starts_with("text/javascript"), "{reference}: {media_type}");
        }
        // Only the bundled files carry a version in their URL; the page's own script may change with the gateway.
        let versioned = reference.split('/').any(|segment| segment.contains('-') && segment.contains('.'));
        assert_eq!(caching.contains("immutable"), versioned, "{reference}: {caching}");
        assets.push(LoadedAsset { reference: reference.to_owned(), body: asset.text().await.unwrap() });
    }
    LoadedPage { policy, assets }
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
