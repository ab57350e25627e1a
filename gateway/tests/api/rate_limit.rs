//! The per-client rate limit over real HTTP: anonymous clients on two loopback addresses (127.0.0.1 and 127.0.0.2
//! both reach a listener on 127.0.0.1) have a budget each; signed-in users have one each, wherever they come from.

use std::{net::IpAddr, time::Duration};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shop_gateway::auth::dev::DevIssuer;

use crate::helpers::{TestApp, error_codes, spawn_app_with};

/// A client whose connections come from `address`.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(address.parse::<IpAddr>().unwrap()).build().unwrap()
}

async fn graphql(app: &TestApp, client: &reqwest::Client) -> Response {
    graphql_as(app, client, None).await
}

async fn graphql_as(app: &TestApp, client: &reqwest::Client, token: Option<&str>) -> Response {
    let query = json!({ "query": "{ __typename }" });
    let mut request = client.post(format!("{}/graphql", app.base_url)).json(&query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> Response {
    client.get(format!("{}{path}", app.base_url)).send().await.unwrap()
}

/// Sends requests until one is refused with 429 (the budget is 1/s, so a handful at most), and returns it.
async fn until_refused<F: Future<Output = Response>>(send: impl FnMut() -> F) -> Response {
    served_until_refused(send).await.1
}

/// How many requests were served before one was refused with 429, and that refusal.
async fn served_until_refused<F: Future<Output = Response>>(
    mut send: impl FnMut() -> F,
) -> (usize, Response) {
    for served in 0..20 {
        let response = send().await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return (served, response);
        }
        assert_eq!(response.status(), StatusCode::OK, "only 200 or 429 expected");
    }
    panic!("20 requests in a row and none was refused");
}

#[tokio::test]
async fn a_client_past_its_limit_gets_429_with_retry_after_while_another_client_is_served() {
    // Arrange: one request a second, two at once.
    let app = spawn_app_with(|settings| {
        settings.rate_limit_per_second = 1;
        settings.rate_limit_burst = 2;
    })
    .await;
    let greedy = client_from("127.0.0.1");
    let other = client_from("127.0.0.2");

    // Act
    let refused = until_refused(|| graphql(&app, &greedy)).await;
    let served_other = graphql(&app, &other).await;

    // Assert
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_codes(&body), ["TOO_MANY_REQUESTS"]);
    assert_eq!(served_other.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(graphql(&app, &greedy).await.status(), StatusCode::OK, "served again after Retry-After");
}

#[tokio::test]
async fn over_rest_the_refusal_is_a_too_many_requests_problem_with_retry_after() {
    // Arrange
    let app = spawn_app_with(|settings| {
        settings.rate_limit_per_second = 1;
        settings.rate_limit_burst = 2;
    })
    .await;
    let greedy = client_from("127.0.0.1");

    // Act
    let refused = until_refused(|| get(&app, &greedy, "/api/v1/products")).await;

    // Assert
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert!(refused.headers().contains_key("retry-after"), "{:?}", refused.headers());
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "/api/v1/problems/too-many-requests");
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["code"], "TOO_MANY_REQUESTS");
}

#[tokio::test]
async fn health_checks_are_never_rate_limited() {
    // Arrange: a client that has used up its budget.
    let app = spawn_app_with(|settings| {
        settings.rate_limit_per_second = 1;
        settings.rate_limit_burst = 1;
    })
    .await;
    let poller = client_from("127.0.0.1");
    until_refused(|| graphql(&app, &poller)).await;

    // Act
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&app, &poller, "/health").await.status());
        statuses.push(get(&app, &poller, "/health/ready").await.status());
    }

    // Assert
    assert!(statuses.iter().all(|status| *status == StatusCode::OK), "{statuses:?}");
}

#[tokio::test]
async fn signed_in_users_are_counted_by_subject_whatever_their_address() {
    // Arrange: two customers behind one address (a shared NAT, a proxy).
    let issuer = DevIssuer::generate("http://issuer.test").unwrap();
    let auth = issuer.settings();
    let app = spawn_app_with(move |settings| {
        settings.auth = auth;
        settings.rate_limit_per_second = 1;
        settings.rate_limit_burst = 2;
    })
    .await;
    let token = |subject: &str| issuer.mint(subject, false, Duration::from_secs(600)).unwrap();
    let (alice, bob) = (token("alice"), token("bob"));
    let shared = client_from("127.0.0.1");
    let elsewhere = client_from("127.0.0.2");

    // Act
    until_refused(|| graphql_as(&app, &shared, Some(&alice))).await;
    let bob_on_the_same_address = graphql_as(&app, &shared, Some(&bob)).await;
    let (alice_served_elsewhere, _) =
        served_until_refused(|| graphql_as(&app, &elsewhere, Some(&alice))).await;

    // Assert: a fresh budget would serve a whole burst (2); Alice's spent one serves none, or one if this machine
    // stalled for the second her budget takes to earn a request back.
    assert_eq!(bob_on_the_same_address.status(), StatusCode::OK);
    assert!(alice_served_elsewhere < 2, "Alice got a fresh budget: {alice_served_elsewhere} served");
}
