use shop_account::startup::Application;
use shop_testkit::TestDatabase;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{settings, spawn_app};

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned()).unwrap().connect().await.unwrap()
}

#[tokio::test]
async fn the_server_reports_itself_serving_over_grpc_health() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(channel(&app.url).await);

    let response =
        health.check(HealthCheckRequest { service: "shop.account.v1.AccountService".into() }).await.unwrap();

    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}

/// The services the server lists over reflection, asked through `$version`'s generated client.
macro_rules! listed_services {
    ($version:ident, $url:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut reflection = ServerReflectionClient::new(channel($url).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses =
            reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            responses.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a list of services");
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
    }};
}

#[tokio::test]
async fn the_server_lists_its_services_over_reflection() {
    let app = spawn_app().await;

    let mut names = listed_services!(v1, &app.url);

    // Its own service only: the descriptor set it is built with describes the other servers' services too.
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "shop.account.v1.AccountService"
        ]
    );
}

#[tokio::test]
async fn older_clients_find_the_services_over_reflection_v1alpha_too() {
    let app = spawn_app().await;

    let names = listed_services!(v1alpha, &app.url);

    assert!(names.contains(&"shop.account.v1.AccountService".to_owned()), "{names:?}");
}

#[tokio::test]
async fn the_server_stops_cleanly_when_asked() {
    let app = spawn_app().await;

    app.server.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_service_creates_its_database_when_it_is_missing() {
    let server = TestDatabase::create().await;
    let mut settings = settings(&server);
    let missing = format!("{}_fresh", server.name);
    settings.database_url = settings.database_url.with_database(&missing);

    let application = Application::build(&settings).await;

    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&missing)
        .fetch_one(&server.pool)
        .await
        .unwrap();
    drop(application);
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{missing}" WITH (FORCE)"#)))
        .execute(&server.pool)
        .await
        .unwrap();
    assert!(exists, "the service should have created {missing}");
}

#[tokio::test]
async fn start_up_gives_up_with_a_clear_error_when_postgres_stays_unreachable() {
    let database = TestDatabase::create().await;
    let mut settings = settings(&database);
    // Nothing listens on port 1.
    settings.database_url = "postgres://postgres@127.0.0.1:1/shop_account".parse().unwrap();
    settings.database.database_startup_timeout_secs = 1;

    let error = Application::build(&settings).await.unwrap_err();

    assert!(
        format!("{error:#}").contains("Failed to connect to Postgres at postgres://postgres@127.0.0.1:1"),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_call_whose_database_connection_is_terminated_answers_unavailable() {
    // Arrange: the insert waits on a lock, so the connection it runs on can be terminated under it, as a Postgres
    // restart (`pg_ctl restart -m fast`) terminates every connection with SQLSTATE 57P01.
    let app = spawn_app().await;
    let mut lock = app.database.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let client = app.client.clone();
    let call = tokio::spawn(async move { client.post_account("Ada").await });
    let waiting =
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let blocked = loop {
        match sqlx::query_scalar::<_, i32>(waiting).fetch_optional(&app.database.pool).await.unwrap() {
            Some(pid) => break pid,
            None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    };

    // Act
    sqlx::query("SELECT pg_terminate_backend($1)").bind(blocked).execute(&app.database.pool).await.unwrap();
    let status = call.await.unwrap().unwrap_err();

    // Assert: the caller is told to retry, and a retry succeeds once the database is back.
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    lock.rollback().await.unwrap();
    app.client.post_account("Ada").await.unwrap();
}

#[tokio::test]
async fn connections_postgres_dropped_while_they_sat_idle_are_replaced_before_a_call_uses_them() {
    // Arrange: the service's pool holds connections, then Postgres drops them all (as a restart or an idle
    // timeout on the server's side would) while they sit idle for longer than the pool trusts an idle connection.
    let app = spawn_app().await;
    app.client.post_account("Ada").await.unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&app.database.pool)
    .await
    .unwrap();
    assert!(dropped.contains(&true), "no connection of the service's to drop");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;

    // Act
    let answer = app.client.post_account("Grace").await;

    // Assert: the pool pinged each idle connection before handing it out, and replaced the dead ones.
    assert!(answer.is_ok(), "{answer:?}");
}
