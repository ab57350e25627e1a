//! Idempotent placement: `PostOrder` with an `idempotency_key`, retried, raced, reused for another order, and
//! forgotten after its time.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use shop_events::account::{Account, AccountCreated};
use shop_order::grpc::client::OrderClient;
use shop_platform::identity::{Identity, Role, attach_identity};
use shop_proto::order::v1::{
    self as proto, LineItem, PostOrderRequest,
    order_service_client::OrderServiceClient,
    order_service_server::{OrderService, OrderServiceServer},
};
use shop_testkit::{RunningServer, count_rows, eventually, kafka::TestBroker, outbox_rows};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status, transport::Channel};
use tonic_types::StatusExt;

use crate::helpers::{TestApp, kettle, publish, spawn_app, spawn_app_with, spawn_projection_app};

fn order(account: &str, lines: &[(&str, u32)], key: &str) -> PostOrderRequest {
    PostOrderRequest {
        account_id: account.to_owned(),
        lines: lines
            .iter()
            .map(|(product_id, quantity)| LineItem {
                product_id: (*product_id).to_owned(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: key.to_owned(),
    }
}

async fn post(app: &TestApp, request: PostOrderRequest) -> Result<proto::Order, Status> {
    Ok(app.client.raw().post_order(request).await?.into_inner().order.unwrap())
}

/// The outbox rows of `event_type`.
async fn events(app: &TestApp, event_type: &str) -> usize {
    outbox_rows(&app.database.pool).await.iter().filter(|row| row.event_type == event_type).count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_answers_the_order_the_first_attempt_placed() {
    // Arrange
    let app = spawn_app().await;
    let (account, kettle, mug) = app.seed().await;
    let first = post(&app, order(&account, &[(&kettle, 1), (&mug, 2)], "checkout-1")).await.unwrap();

    // Act: the same order again, its lines in another order and split (they are merged).
    let retry =
        post(&app, order(&account, &[(&mug, 1), (&kettle, 1), (&mug, 1)], "checkout-1")).await.unwrap();

    // Assert
    assert_eq!(retry, first);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
    assert_eq!(events(&app, "shop.order.placed.v1").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_order_is_already_exists_and_places_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Act
    let status = post(&app, order(&account, &[(&kettle, 2)], "checkout-1")).await.unwrap_err();

    // Assert
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("idempotency key"), "{status:?}");
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
}

#[tokio::test]
async fn keys_belong_to_an_account() {
    // Arrange
    let app = spawn_app().await;
    let (ada, kettle, _) = app.seed().await;
    let bob = app.accounts.post_account("Bob").await.unwrap().id;

    // Act
    let adas = post(&app, order(&ada, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    let bobs = post(&app, order(&bob, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Assert
    assert_ne!(adas.id, bobs.id);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_identical_requests_racing_place_one_order() {
    // Arrange
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;

    // Act: fired at once, on one channel (HTTP/2 streams) so none waits for a connection.
    let attempts = (0..20).map(|_| {
        let (mut client, request) = (app.client.raw(), order(&account, &[(&kettle, 1)], "double-click"));
        async move { client.post_order(request).await.map(|answer| answer.into_inner().order.unwrap().id) }
    });
    let answers = futures::future::join_all(attempts).await;

    // Assert: every attempt answers the one order placed.
    let ids: Vec<String> = answers.into_iter().map(|answer| answer.unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
    assert_eq!(events(&app, "shop.order.placed.v1").await, 1);
}

/// An order service in front of the real one that loses its first answer to `PostOrder` after the real one
/// committed: what a client sees when the connection drops between the commit and the response.
struct LosesTheFirstAnswer {
    real: OrderServiceClient<Channel>,
    lost: AtomicBool,
}

#[tonic::async_trait]
impl OrderService for LosesTheFirstAnswer {
    async fn post_order(
        &self,
        request: Request<PostOrderRequest>,
    ) -> Result<Response<proto::PostOrderResponse>, Status> {
        let answer = self.real.clone().post_order(request.into_inner()).await?;
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err(Status::unavailable("the connection dropped before the answer"));
        }
        Ok(answer)
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::GetOrderResponse>, Status> {
        self.real.clone().get_order(request.into_inner()).await
    }

    async fn get_orders_for_account(
        &self,
        request: Request<proto::GetOrdersForAccountRequest>,
    ) -> Result<Response<proto::GetOrdersForAccountResponse>, Status> {
        self.real.clone().get_orders_for_account(request.into_inner()).await
    }

    async fn get_orders_for_accounts(
        &self,
        request: Request<proto::GetOrdersForAccountsRequest>,
    ) -> Result<Response<proto::GetOrdersForAccountsResponse>, Status> {
        self.real.clone().get_orders_for_accounts(request.into_inner()).await
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::CancelOrderResponse>, Status> {
        self.real.clone().cancel_order(request.into_inner()).await
    }
}

#[tokio::test]
async fn a_retry_after_an_answer_lost_past_the_commit_answers_the_committed_order() {
    // Arrange: a client that reaches the order service through a hop that loses the first answer.
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let real = OrderServiceClient::connect(app.url.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let hop = OrderServiceServer::new(LosesTheFirstAnswer { real, lost: AtomicBool::new(false) });
    let _hop = RunningServer::spawn(|shutdown| async move {
        tonic::transport::Server::builder()
            .add_service(hop)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .map_err(anyhow::Error::from)
    });
    let mut client = OrderServiceClient::connect(format!("http://{address}")).await.unwrap();

    // Act: the first attempt fails as far as the client can tell; it retries with the same key.
    let first = client.post_order(order(&account, &[(&kettle, 1)], "checkout-7")).await.unwrap_err();
    let retry = client.post_order(order(&account, &[(&kettle, 1)], "checkout-7")).await.unwrap();

    // Assert: one order, the one the first attempt committed.
    assert_eq!(first.code(), Code::Unavailable);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
    let stored: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM orders").fetch_one(&app.database.pool).await.unwrap();
    assert_eq!(retry.into_inner().order.unwrap().id, stored.to_string());
    assert_eq!(events(&app, "shop.order.placed.v1").await, 1);
}

#[tokio::test]
async fn keys_are_deleted_in_the_background_after_their_time_and_may_then_place_a_new_order() {
    // Arrange: keys kept one second, the cleanup looking every second.
    let app = spawn_app_with(|settings| {
        settings.idempotency_key_ttl_seconds = 1;
        settings.idempotency_key_cleanup_interval_seconds = 1;
    })
    .await;
    let (account, kettle, _) = app.seed().await;
    let first = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Act
    eventually(Duration::from_secs(30), "the key to be forgotten", || async {
        count_rows(&app.database.pool, "order_idempotency_keys").await == 0
    })
    .await;
    let later = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Assert
    assert_ne!(later.id, first.id);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 2);
}

#[tokio::test]
async fn an_expired_key_places_a_new_order_even_before_the_cleanup_deleted_it() {
    // Arrange: keys kept one second, and no cleanup within the test.
    let app = spawn_app_with(|settings| {
        settings.idempotency_key_ttl_seconds = 1;
        settings.idempotency_key_cleanup_interval_seconds = 3_600;
    })
    .await;
    let (account, kettle, _) = app.seed().await;
    let first = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    let retry = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Act: past the key's time, and once more right after.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    let later_retry = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    // Assert: within its time the key answered its order; past it, it placed a new one, which it now answers.
    assert_eq!(retry.id, first.id);
    assert_ne!(later.id, first.id);
    assert_eq!(later_retry.id, later.id);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 2);
    assert_eq!(count_rows(&app.database.pool, "order_idempotency_keys").await, 1, "claimed anew, in place");
}

#[tokio::test]
async fn a_key_that_is_not_printable_ascii_is_invalid_argument() {
    // Arrange
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;

    for key in ["a key".to_owned(), "x".repeat(256), "clé".to_owned()] {
        // Act
        let status = post(&app, order(&account, &[(&kettle, 1)], &key)).await.unwrap_err();

        // Assert
        assert_eq!(status.code(), Code::InvalidArgument, "{key:?}: {status:?}");
        let fields = status.get_error_details().bad_request().unwrap().field_violations.clone();
        assert_eq!(fields[0].field, "idempotency_key", "{fields:?}");
    }
    assert_eq!(count_rows(&app.database.pool, "orders").await, 0);
}

/// `request`, sent as `identity` (a customer may name only their own account).
async fn post_as(
    client: &OrderClient,
    identity: &Identity,
    request: PostOrderRequest,
) -> Result<proto::Order, Status> {
    let mut request = Request::new(request);
    attach_identity(&mut request, identity).unwrap();
    Ok(client.raw().post_order(request).await?.into_inner().order.unwrap())
}

fn customer(subject: &str) -> Identity {
    Identity { subject: subject.to_owned(), role: Role::Customer }
}

#[tokio::test]
async fn a_customers_key_on_anothers_account_is_not_found_exactly_like_a_missing_account() {
    // Arrange: Ada placed an order with a key; Grace sends the very same request, key included.
    let app = spawn_app().await;
    let (ada, grace) = (customer("auth0|ada"), customer("auth0|grace"));
    let adas = app.accounts.post_account_as("Ada", &ada).await.unwrap().id;
    let kettle = app.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
    let missing = uuid::Uuid::now_v7().to_string();
    let placed = post_as(&app.client, &ada, order(&adas, &[(&kettle, 1)], "checkout-1")).await.unwrap();

    for account in [&adas, &missing] {
        for lines in [[(&*kettle, 1)], [(&*kettle, 2)]] {
            // Act: the same order as Ada's, and another one, under her key.
            let status =
                post_as(&app.client, &grace, order(account, &lines, "checkout-1")).await.unwrap_err();

            // Assert: neither her order nor a conflict, but what a missing account answers.
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert_eq!(status.message(), format!("account {account} does not exist"));
        }
    }
    let retry = post_as(&app.client, &ada, order(&adas, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    assert_eq!(retry.id, placed.id);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
}

#[tokio::test]
async fn a_retry_is_answered_from_its_key_while_the_catalog_is_down() {
    // Arrange: Ada placed an order with a key; then the catalog goes down.
    let mut app = spawn_app().await;
    let ada = customer("auth0|ada");
    let adas = app.accounts.post_account_as("Ada", &ada).await.unwrap().id;
    let kettle = app.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
    let placed = post_as(&app.client, &ada, order(&adas, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    app.stop_catalog_service().await;

    // Act
    let retry = post_as(&app.client, &ada, order(&adas, &[(&kettle, 1)], "checkout-1")).await;
    let new_key = post_as(&app.client, &ada, order(&adas, &[(&kettle, 1)], "checkout-2")).await;

    // Assert: the retry needs no pricing; a new order does, and cannot be placed.
    assert_eq!(retry.unwrap(), placed);
    assert_eq!(new_key.unwrap_err().code(), Code::Unavailable);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
}

#[tokio::test]
async fn a_retry_without_identity_is_answered_from_its_key_while_the_account_service_is_down() {
    // Arrange
    let mut app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let placed = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await.unwrap();
    app.stop_account_service().await;

    // Act
    let retry = post(&app, order(&account, &[(&kettle, 1)], "checkout-1")).await;
    let other = post(&app, order(&account, &[(&kettle, 2)], "checkout-1")).await;
    let new_key = post(&app, order(&account, &[(&kettle, 1)], "checkout-2")).await;

    // Assert
    assert_eq!(retry.unwrap(), placed);
    assert_eq!(other.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(new_key.unwrap_err().code(), Code::Unavailable);
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
}

// --- projection mode: the same rules over the service's own projection of accounts and products.

fn adas_account(id: uuid::Uuid) -> AccountCreated {
    let account = Account {
        id,
        name: "Ada".into(),
        version: 1,
        created_at: shop_events::envelope::now(),
        owner: Some("auth0|ada".into()),
    };
    AccountCreated { account }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_projection_mode_racing_retries_place_one_order_another_order_conflicts_and_another_customer_is_not_found()
 {
    // Arrange: the projection holds Ada's account and a kettle.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000).await;
    let (adas, kettle_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    publish(&broker, &adas_account(adas)).await;
    publish(&broker, &kettle(kettle_id)).await;
    eventually(Duration::from_secs(30), "the account and the kettle in the projection", || async {
        count_rows(&app.database.pool, &format!("account_projection WHERE id = '{adas}'")).await == 1
            && count_rows(&app.database.pool, &format!("product_projection WHERE id = '{kettle_id}'")).await
                == 1
    })
    .await;
    let (adas, kettle_id) = (adas.to_string(), kettle_id.to_string());
    let (ada, grace) = (customer("auth0|ada"), customer("auth0|grace"));

    // Act: twenty identical attempts at once, then another order under the key, then Grace with it.
    let attempts =
        (0..20).map(|_| post_as(&app.client, &ada, order(&adas, &[(&kettle_id, 1)], "checkout-1")));
    let answers = futures::future::join_all(attempts).await;
    let other = post_as(&app.client, &ada, order(&adas, &[(&kettle_id, 2)], "checkout-1")).await;
    let graces = post_as(&app.client, &grace, order(&adas, &[(&kettle_id, 1)], "checkout-1")).await;

    // Assert
    let orders: Vec<proto::Order> = answers.into_iter().map(Result::unwrap).collect();
    assert!(orders.iter().all(|order| order.id == orders[0].id), "{orders:?}");
    assert_eq!(other.unwrap_err().code(), Code::AlreadyExists);
    let refused = graces.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(refused.message(), format!("account {adas} does not exist"));
    assert_eq!(count_rows(&app.database.pool, "orders").await, 1);
    assert_eq!(
        outbox_rows(&app.database.pool)
            .await
            .iter()
            .filter(|row| row.event_type == "shop.order.placed.v1")
            .count(),
        1
    );
    app.server.stop().await.unwrap();
}
