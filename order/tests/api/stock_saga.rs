//! The order side of the stock saga. In projection mode: an order naming a product that tracks its stock waits as
//! AWAITING_STOCK for the catalog's answer on `shop.stock-reservations.v1` (published here straight to the broker,
//! as the catalog's relay would), and becomes CONFIRMED or REJECTED from it; an order waiting too long is rejected
//! once, whichever replica sweeps it, and owes a release until the catalog says it released; a customer cancels
//! their own order before it is final, and another's looks missing. In `grpc` mode, against the real catalog: stock
//! the catalog holds for an order whose answer comes after the deadline goes back once, with three replicas.

use std::time::Duration;

use shop_events::{
    account::{Account, AccountCreated},
    catalog::{Product, ProductCreated},
    envelope::now,
    stock::{
        Reservation, ReservationStatus, Shortage, StockLine, StockRejected, StockReleased, StockReserved,
    },
};
use shop_order::{config::Settings, grpc::client::OrderClient, startup::Application};
use shop_platform::identity::{Identity, Role};
use shop_proto::{
    catalog::v1::{
        self as catalog, ReservationStatus as ReservationStatusProto,
        catalog_service_client::CatalogServiceClient,
        catalog_service_server::{CatalogService, CatalogServiceServer},
    },
    order::v1::{Order, OrderStatus, order_step::Kind},
};
use shop_testkit::{
    RunningServer, TestDatabase, eventually, init_test_logging, kafka::TestBroker, outbox_rows,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status, transport::Channel};
use uuid::Uuid;

use crate::helpers::{
    ProjectionApp, TestApp, projection_settings, publish, spawn_app_with, spawn_order_service,
};

/// Ada's account (owned by `auth0|ada`) and a kettle that tracks its stock (10 units), published and projected.
async fn publish_ada_and_a_stocked_kettle(broker: &TestBroker, app: &ProjectionApp) -> (Uuid, Uuid) {
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());
    let at = now();
    let account =
        Account { id: ada, name: "Ada".into(), version: 1, created_at: at, owner: Some("auth0|ada".into()) };
    publish(broker, &AccountCreated { account }).await;
    let product = Product {
        id: kettle,
        name: "Kettle".into(),
        description: "Boils water.".into(),
        price_cents: 2_499,
        stock: Some(10),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    publish(broker, &ProductCreated { product }).await;
    eventually(Duration::from_secs(20), "the stocked kettle in the projection", || async {
        let tracks: Option<bool> =
            sqlx::query_scalar("SELECT tracks_stock FROM product_projection WHERE id = $1")
                .bind(kettle)
                .fetch_optional(&app.database.pool)
                .await
                .unwrap();
        tracks == Some(true)
    })
    .await;
    (ada, kettle)
}

/// Projection mode on `database`, answering priced, timing stock out after `stock_timeout_ms`.
fn saga_settings(broker: &TestBroker, database: &TestDatabase, stock_timeout_ms: u64) -> Settings {
    Settings {
        priced_answer_wait_ms: 2_000,
        stock_timeout_ms,
        ..projection_settings(database, broker, &broker.bootstrap, 10_000)
    }
}

/// The order service with [`saga_settings`].
async fn spawn_saga_app(broker: &TestBroker, database: TestDatabase, stock_timeout_ms: u64) -> ProjectionApp {
    init_test_logging();
    let settings = saga_settings(broker, &database, stock_timeout_ms);
    spawn_order_service(database, &settings).await
}

/// The catalog's reservation for `order` of one kettle, in `status`.
fn reservation(order: &Order, kettle: Uuid, status: ReservationStatus, version: i64) -> Reservation {
    let at = now();
    Reservation {
        order_id: order.id.parse().unwrap(),
        status,
        lines: vec![StockLine { product_id: kettle, quantity: 1 }],
        held: status == ReservationStatus::Reserved,
        shortages: if status == ReservationStatus::Rejected {
            vec![Shortage { product_id: kettle, requested: 1, available: Some(0) }]
        } else {
            Vec::new()
        },
        version,
        created_at: at,
        updated_at: at,
    }
}

async fn order_a_kettle(app: &ProjectionApp, ada: Uuid, kettle: Uuid) -> Order {
    app.client.post_order(&ada.to_string(), &[(&kettle.to_string(), 1)]).await.unwrap()
}

/// Waits until `order` satisfies `done`; returns it then.
async fn until(app: &ProjectionApp, order: &Order, what: &str, done: impl Fn(&Order) -> bool) -> Order {
    eventually(Duration::from_secs(20), what, || async {
        done(&app.client.get_order(&order.id).await.unwrap())
    })
    .await;
    app.client.get_order(&order.id).await.unwrap()
}

fn steps(order: &Order) -> Vec<Kind> {
    order.history.iter().map(|step| step.kind()).collect()
}

/// How many events of `event_type` the outbox holds for `order`.
async fn events(app: &ProjectionApp, order: &Order, event_type: &str) -> usize {
    let id: Uuid = order.id.parse().unwrap();
    outbox_rows(&app.database.pool)
        .await
        .into_iter()
        .filter(|row| row.aggregate_id == id && row.event_type == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_a_stocked_product_awaits_stock_and_is_confirmed_once_however_often_the_catalog_answers()
{
    // Arrange
    let broker = TestBroker::start().await;
    let app = spawn_saga_app(&broker, TestDatabase::create().await, 60_000).await;
    let (ada, kettle) = publish_ada_and_a_stocked_kettle(&broker, &app).await;

    // Act: the order is answered priced, awaiting stock; the catalog's answer comes twice.
    let order = order_a_kettle(&app, ada, kettle).await;
    let reserved = StockReserved { reservation: reservation(&order, kettle, ReservationStatus::Reserved, 1) };
    publish(&broker, &reserved).await;
    publish(&broker, &reserved).await;

    // Assert
    assert_eq!((order.status(), order.total_price_cents), (OrderStatus::AwaitingStock, Some(2_499)));
    let confirmed =
        until(&app, &order, "the order confirmed", |o| o.status() == OrderStatus::Confirmed).await;
    assert_eq!((confirmed.version, confirmed.total_price_cents), (3, Some(2_499)));
    assert_eq!(steps(&confirmed), [Kind::Placed, Kind::AwaitingStock, Kind::StockReserved, Kind::Confirmed]);
    // Both answers consumed (a marker order's answer after them went through), one confirmation.
    let marker = order_a_kettle(&app, ada, kettle).await;
    publish(
        &broker,
        &StockReserved { reservation: reservation(&marker, kettle, ReservationStatus::Reserved, 1) },
    )
    .await;
    until(&app, &marker, "the marker confirmed", |o| o.status() == OrderStatus::Confirmed).await;
    assert_eq!(events(&app, &order, "shop.order.confirmed.v1").await, 1);
    assert_eq!(events(&app, &order, "shop.order.awaiting_stock.v1").await, 1);
    // Stopped before the broker goes: its consumers leave their groups while the broker is there to answer.
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_catalog_cannot_hold_is_rejected_naming_the_shortage_and_owes_no_release() {
    let broker = TestBroker::start().await;
    let app = spawn_saga_app(&broker, TestDatabase::create().await, 60_000).await;
    let (ada, kettle) = publish_ada_and_a_stocked_kettle(&broker, &app).await;

    let order = order_a_kettle(&app, ada, kettle).await;
    publish(
        &broker,
        &StockRejected { reservation: reservation(&order, kettle, ReservationStatus::Rejected, 1) },
    )
    .await;

    let rejected = until(&app, &order, "the order rejected", |o| o.status() == OrderStatus::Rejected).await;
    assert_eq!(rejected.rejection_reason, format!("out of stock: {kettle} (1 wanted, 0 available)"));
    assert_eq!((rejected.total_price_cents, rejected.stock_release_pending), (None, false));
    assert_eq!(steps(&rejected), [Kind::Placed, Kind::AwaitingStock, Kind::StockRejected, Kind::Rejected]);
    // Stopped before the broker goes: its consumers leave their groups while the broker is there to answer.
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_awaiting_stock_past_its_deadline_is_rejected_once_by_two_replicas_and_owes_a_release_until_answered()
 {
    // Arrange: two replicas of the order service on one database, timing stock out after 1 s.
    let broker = TestBroker::start().await;
    let app = spawn_saga_app(&broker, TestDatabase::create().await, 1_000).await;
    let replica = Application::build(&saga_settings(&broker, &app.database, 1_000)).await.unwrap();
    let replica = RunningServer::spawn(|shutdown| replica.run_until_stopped(shutdown));
    let (ada, kettle) = publish_ada_and_a_stocked_kettle(&broker, &app).await;

    // Act: nobody answers about stock.
    let order = order_a_kettle(&app, ada, kettle).await;
    let rejected = until(&app, &order, "the order timed out", |o| o.status() == OrderStatus::Rejected).await;

    // Assert: rejected once, for the deadline, owing a release; a late reservation changes nothing.
    assert_eq!(rejected.rejection_reason, "no answer about stock within 1000 ms");
    assert!(rejected.stock_release_pending);
    assert_eq!(events(&app, &order, "shop.order.rejected.v1").await, 1);
    publish(
        &broker,
        &StockReserved { reservation: reservation(&order, kettle, ReservationStatus::Reserved, 1) },
    )
    .await;

    // The catalog's release (delivered twice) completes it, once.
    let released = StockReleased { reservation: reservation(&order, kettle, ReservationStatus::Released, 2) };
    publish(&broker, &released).await;
    publish(&broker, &released).await;
    let done = until(&app, &order, "the release recorded", |o| !o.stock_release_pending).await;
    assert_eq!((done.status(), done.version), (OrderStatus::Rejected, 4));
    assert_eq!(steps(&done).last(), Some(&Kind::StockReleased));
    let marker = order_a_kettle(&app, ada, kettle).await;
    publish(
        &broker,
        &StockReserved { reservation: reservation(&marker, kettle, ReservationStatus::Reserved, 1) },
    )
    .await;
    until(&app, &marker, "the marker confirmed", |o| o.status() == OrderStatus::Confirmed).await;
    assert_eq!(events(&app, &order, "shop.order.rejected.v1").await, 1, "timed out once by two replicas");
    assert_eq!(events(&app, &order, "shop.order.stock_released.v1").await, 1);
    assert_eq!(events(&app, &order, "shop.order.confirmed.v1").await, 0, "the late reservation was ignored");
    replica.stop().await.unwrap();
    // Stopped before the broker goes: its consumers leave their groups while the broker is there to answer.
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancels_their_own_order_before_it_is_final_and_another_customers_order_looks_missing() {
    // Arrange
    let broker = TestBroker::start().await;
    let app = spawn_saga_app(&broker, TestDatabase::create().await, 60_000).await;
    let (ada, kettle) = publish_ada_and_a_stocked_kettle(&broker, &app).await;
    let customer = |subject: &str| Identity { subject: subject.into(), role: Role::Customer };
    let (adas_order, confirmed) =
        (order_a_kettle(&app, ada, kettle).await, order_a_kettle(&app, ada, kettle).await);
    publish(
        &broker,
        &StockReserved { reservation: reservation(&confirmed, kettle, ReservationStatus::Reserved, 1) },
    )
    .await;
    until(&app, &confirmed, "the second order confirmed", |o| o.status() == OrderStatus::Confirmed).await;

    // Act / Assert: Grace cannot see Ada's order, exactly as a missing one.
    let graces = app.client.cancel_order(&adas_order.id, Some(&customer("auth0|grace"))).await.unwrap_err();
    let missing_id = Uuid::now_v7().to_string();
    let missing = app.client.cancel_order(&missing_id, Some(&customer("auth0|grace"))).await.unwrap_err();
    assert_eq!((graces.code(), missing.code()), (Code::NotFound, Code::NotFound));
    assert_eq!(
        graces.message().replace(&adas_order.id, "{id}"),
        missing.message().replace(&missing_id, "{id}")
    );

    // Ada cancels her order awaiting stock: it owes a release.
    let cancelled = app.client.cancel_order(&adas_order.id, Some(&customer("auth0|ada"))).await.unwrap();
    assert_eq!((cancelled.status(), cancelled.stock_release_pending), (OrderStatus::Cancelled, true));
    assert_eq!(cancelled.history.last().unwrap().detail, "cancelled by the customer");

    // A final order is not cancelled, by its owner or by staff.
    for (order, identity) in [(&adas_order, Some(customer("auth0|ada"))), (&confirmed, None)] {
        let refused = app.client.cancel_order(&order.id, identity.as_ref()).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    }
    assert_eq!(events(&app, &adas_order, "shop.order.cancelled.v1").await, 1);
    // Stopped before the broker goes: its consumers leave their groups while the broker is there to answer.
    app.server.stop().await.unwrap();
}

// --- grpc mode: the real catalog, reached over gRPC.

/// The real catalog behind a hop that answers `ReserveStock` `delay` late (the reservation itself is made at
/// once): an answer that comes after the order's deadline.
struct AnswersLate {
    real: CatalogServiceClient<Channel>,
    delay: Duration,
}

#[tonic::async_trait]
impl CatalogService for AnswersLate {
    async fn post_product(
        &self,
        request: Request<catalog::PostProductRequest>,
    ) -> CatalogAnswer<catalog::PostProductResponse> {
        self.real.clone().post_product(request.into_inner()).await
    }

    async fn update_product(
        &self,
        request: Request<catalog::UpdateProductRequest>,
    ) -> CatalogAnswer<catalog::UpdateProductResponse> {
        self.real.clone().update_product(request.into_inner()).await
    }

    async fn get_product(
        &self,
        request: Request<catalog::GetProductRequest>,
    ) -> CatalogAnswer<catalog::GetProductResponse> {
        self.real.clone().get_product(request.into_inner()).await
    }

    async fn get_products(
        &self,
        request: Request<catalog::GetProductsRequest>,
    ) -> CatalogAnswer<catalog::GetProductsResponse> {
        self.real.clone().get_products(request.into_inner()).await
    }

    async fn adjust_stock(
        &self,
        request: Request<catalog::AdjustStockRequest>,
    ) -> CatalogAnswer<catalog::AdjustStockResponse> {
        self.real.clone().adjust_stock(request.into_inner()).await
    }

    async fn reserve_stock(
        &self,
        request: Request<catalog::ReserveStockRequest>,
    ) -> CatalogAnswer<catalog::ReserveStockResponse> {
        let answer = self.real.clone().reserve_stock(request.into_inner()).await;
        tokio::time::sleep(self.delay).await;
        answer
    }

    async fn release_stock(
        &self,
        request: Request<catalog::ReleaseStockRequest>,
    ) -> CatalogAnswer<catalog::ReleaseStockResponse> {
        self.real.clone().release_stock(request.into_inner()).await
    }
}

type CatalogAnswer<T> = Result<Response<T>, Status>;

/// An order service replica with `settings`, on the same database as the others.
async fn replica(settings: Settings) -> (OrderClient, RunningServer) {
    let application =
        Application::build(&Settings { listen_addr: "127.0.0.1:0".parse().unwrap(), ..settings })
            .await
            .unwrap();
    let url = format!("http://{}", application.local_addr());
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    (OrderClient::connect(url).await.unwrap(), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_grpc_mode_stock_reserved_for_an_order_past_its_deadline_comes_back_once_with_two_more_replicas() {
    // Arrange: ten kettles; the real catalog behind a hop that answers ReserveStock 3 s late; the order service and
    // two replicas on its database reaching the catalog through the hop, all timing stock out after 1 s.
    let app = spawn_app_with(|settings| {
        settings.stock_timeout_ms = 1_000;
        settings.validation_interval_ms = 100;
        settings.dependency_timeout_ms = 10_000;
    })
    .await;
    let ada = app.accounts.post_account("Ada").await.unwrap().id;
    let kettle = app.catalog.post_product_with_stock("Kettle", "", 2_499, 10).await.unwrap().id;
    let real = CatalogServiceClient::connect(app.settings.catalog_service_url.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hop_url = format!("http://{}", listener.local_addr().unwrap());
    let hop = CatalogServiceServer::new(AnswersLate { real, delay: Duration::from_secs(3) });
    let hop = RunningServer::spawn(|shutdown| async move {
        tonic::transport::Server::builder()
            .add_service(hop)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .map_err(anyhow::Error::from)
    });
    let through_hop = Settings { catalog_service_url: hop_url, ..app.settings.clone() };
    let (client, first) = replica(through_hop.clone()).await;
    let (_, second) = replica(through_hop).await;

    // Act: the catalog holds a kettle at once, but says so only after the deadline.
    let answer = client.post_order(&ada, &[(&kettle, 1)]).await.unwrap();

    // Assert: rejected for the deadline, once; the kettle is back, once; the late answer changed nothing.
    assert_eq!(answer.status(), OrderStatus::Rejected);
    assert_eq!(answer.rejection_reason, "no answer about stock within 1000 ms");
    let order = until_grpc(&app, &answer.id, |o| !o.stock_release_pending).await;
    assert_eq!(steps(&order), [Kind::Placed, Kind::AwaitingStock, Kind::Rejected, Kind::StockReleased]);
    assert_eq!(app.catalog.get_product(&kettle).await.unwrap().stock, Some(10));
    let again = app.catalog.reserve_stock(&answer.id, &[(&kettle, 1)]).await.unwrap();
    assert_eq!(again.status(), ReservationStatusProto::Released, "nothing is held for it again");
    assert_eq!(app.catalog.get_product(&kettle).await.unwrap().stock, Some(10));
    let order_events: Vec<String> = outbox_rows(&app.database.pool)
        .await
        .into_iter()
        .filter(|row| row.aggregate_id.to_string() == answer.id)
        .map(|row| row.event_type)
        .collect();
    assert_eq!(
        order_events,
        [
            "shop.order.placed.v1",
            "shop.order.awaiting_stock.v1",
            "shop.order.rejected.v1",
            "shop.order.stock_released.v1"
        ]
    );
    for server in [first, second, hop] {
        server.stop().await.unwrap();
    }
}

/// Waits until the order `id` satisfies `done`, as the order service answers it; returns it then.
async fn until_grpc(app: &TestApp, id: &str, done: impl Fn(&Order) -> bool) -> Order {
    eventually(Duration::from_secs(20), "the order to settle", || async {
        done(&app.client.get_order(id).await.unwrap())
    })
    .await;
    app.client.get_order(id).await.unwrap()
}
