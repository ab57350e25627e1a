//! GraphQL subscriptions end to end: orders placed through the gateway, validated from the projection, published by
//! the relay, read back from the order topic by the gateway, and pushed over a real WebSocket
//! (`graphql-transport-ws`).

use serde_json::{Value, json};
use shop::dev_auth::LocalAuth;
use shop_gateway::live::{LiveSettings, SLOW_SUBSCRIBER};
use shop_testkit::{
    RunningServer,
    subscriptions::{Received, SubscriptionClient},
};
use uuid::Uuid;

use crate::{
    auth::token,
    helpers::{TestShop, start_shop_with},
};

const ORDER_UPDATED: &str = "subscription($id: ID!) {
    orderUpdated(id: $id) { id version status totalPrice rejectionReason } }";
const ACCOUNT_ORDERS: &str = "subscription($accountId: ID!) {
    accountOrders(accountId: $accountId) { id version status } }";

/// A shop whose `createOrder` answers at once (PENDING), so that validation happens while clients listen.
async fn start_shop() -> TestShop {
    start_shop_with(|settings| settings.order_priced_answer_wait_ms = 0).await
}

fn base_url(shop: &TestShop) -> String {
    format!("http://{}", shop.shop.gateway_addr)
}

/// `(version, status)` of each order in `results`.
fn versions(results: &[Value]) -> Vec<(i64, String)> {
    results
        .iter()
        .map(|order| (order["version"].as_i64().unwrap(), order["status"].as_str().unwrap().into()))
        .collect()
}

/// Asserts that `versions` are consecutive (no gap, no repeat) and end with `status`, the only final one.
fn assert_complete_history(versions: &[(i64, String)], status: &str) {
    let first = versions.first().expect("at least the current state").0;
    let numbers: Vec<i64> = versions.iter().map(|(version, _)| *version).collect();
    assert_eq!(numbers, (first..first + versions.len() as i64).collect::<Vec<_>>(), "{versions:?}");
    assert_eq!(versions.last().unwrap().1, status, "{versions:?}");
    assert!(versions[..versions.len() - 1].iter().all(|(_, status)| status == "PENDING"), "{versions:?}");
}

/// The `extensions.code` of the error subscription `id` ended with (its one result, before it completes).
async fn error_code(client: &mut SubscriptionClient, id: &str) -> String {
    let code = match client.receive().await.unwrap() {
        Received::Next { id: of, payload } if of == id => {
            payload["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_owned()
        }
        other => panic!("expected subscription {id} to fail, got {other:?}"),
    };
    assert_eq!(client.receive().await.unwrap(), Received::Complete { id: id.to_owned() });
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_pushed_from_pending_to_confirmed_and_its_subscription_completes() {
    // Arrange: a client listening to the account before the order exists.
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let mut account = SubscriptionClient::connect(&base_url(&shop), json!({})).await.unwrap();
    let account_id = account.subscribe(ACCOUNT_ORDERS, json!({ "accountId": ada })).await.unwrap();

    // Act
    let placed = shop.client.create_order(&ada, &[(&kettle, 2)]).await;
    let id = placed["id"].as_str().unwrap();
    let mut order = SubscriptionClient::connect(&base_url(&shop), json!({})).await.unwrap();
    let order_id = order.subscribe(ORDER_UPDATED, json!({ "id": id })).await.unwrap();
    let updates = order.results_until_complete(&order_id, "orderUpdated").await.unwrap();

    // Assert: the order's own subscription: its state when it began, every later version, then completion.
    assert_eq!(placed["status"], "PENDING");
    assert_complete_history(&versions(&updates), "CONFIRMED");
    assert_eq!(updates.last().unwrap()["totalPrice"], 49.98);
    // The account's, listening from before the order: every version, from PENDING on.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match account.receive().await.unwrap() {
            Received::Next { id: of, payload } if of == account_id => {
                seen.push(payload["data"]["accountOrders"].clone())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(seen.iter().all(|update| update["id"] == id), "{seen:?}");
    assert_eq!(versions(&seen), [(1, "PENDING".into()), (2, "CONFIRMED".into())]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_order_is_pushed_with_its_reason() {
    // Arrange: a product nobody created, so the validator rejects the order.
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let missing = Uuid::now_v7().to_string();
    let mut client = SubscriptionClient::connect(&base_url(&shop), json!({})).await.unwrap();

    // Act
    let placed = shop.client.create_order(&ada, &[(&missing, 1)]).await;
    let id = client.subscribe(ORDER_UPDATED, json!({ "id": placed["id"] })).await.unwrap();
    let updates = client.results_until_complete(&id, "orderUpdated").await.unwrap();

    // Assert
    assert_complete_history(&versions(&updates), "REJECTED");
    let reason = updates.last().unwrap()["rejectionReason"].as_str().unwrap();
    assert!(reason.contains(&missing), "{reason}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_a_final_order_sends_its_state_and_completes() {
    // Arrange
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let placed = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    let id = placed["id"].as_str().unwrap();
    shop.settled_order(id).await;
    let mut client = SubscriptionClient::connect(&base_url(&shop), json!({})).await.unwrap();

    // Act
    let subscription = client.subscribe(ORDER_UPDATED, json!({ "id": id })).await.unwrap();
    let updates = client.results_until_complete(&subscription, "orderUpdated").await.unwrap();

    // Assert
    assert_eq!(versions(&updates), [(2, "CONFIRMED".into())]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_subscribers_each_see_their_own_orders_versions_once_and_in_order() {
    // Arrange
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;

    // Act: 200 clients at once, each placing an order and following it on a connection of its own.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (graphql, base, ada, kettle) =
            (shop.client.clone(), base_url(&shop), ada.clone(), kettle.clone());
        clients.spawn(async move {
            let mut client = SubscriptionClient::connect(&base, json!({})).await.unwrap();
            let placed = graphql.create_order(&ada, &[(&kettle, 1)]).await;
            let id = placed["id"].as_str().unwrap().to_owned();
            let subscription = client.subscribe(ORDER_UPDATED, json!({ "id": id })).await.unwrap();
            (id, client.results_until_complete(&subscription, "orderUpdated").await.unwrap())
        });
    }
    let followed = clients.join_all().await;

    // Assert
    assert_eq!(followed.len(), 200);
    let mut from_pending = 0;
    for (id, updates) in &followed {
        assert!(
            updates.iter().all(|update| update["id"] == id.as_str()),
            "another order's update: {updates:?}"
        );
        let versions = versions(updates);
        assert_complete_history(&versions, "CONFIRMED");
        from_pending += usize::from(versions[0].1 == "PENDING");
    }
    println!("{from_pending} of 200 subscriptions began while their order was PENDING");
    shop.stop().await;
}

/// A gateway of its own in front of `shop`'s services and broker, with `live` limits.
async fn start_gateway(shop: &TestShop, live: LiveSettings) -> (String, RunningServer) {
    let url = |name: &str| format!("http://{}", shop.shop.service_addrs[name]);
    let settings = shop_gateway::config::Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        account_service_url: url("account"),
        catalog_service_url: url("catalog"),
        order_service_url: url("order"),
        auth: shop_gateway::auth::settings::AuthSettings::disabled(),
        kafka: shop_platform::kafka::KafkaSettings {
            kafka_topic_prefix: shop.settings.kafka_topic_prefix.clone(),
            ..shop_platform::kafka::KafkaSettings::new(shop.shop.kafka_brokers.clone())
        },
        live,
        ..Default::default()
    };
    let gateway = shop_gateway::startup::Application::build(&settings).await.unwrap();
    let base = format!("http://{}", gateway.local_addr());
    (base, RunningServer::spawn(|stop| gateway.run_until_stopped(stop)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resubscribing_after_a_gateway_restart_sees_no_gap() {
    // Arrange: an order that stays PENDING a moment (its product does not exist), followed through one gateway.
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let placed = shop.client.create_order(&ada, &[(&Uuid::now_v7().to_string(), 1)]).await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let (first, gateway) = start_gateway(&shop, LiveSettings::default()).await;
    let mut client = SubscriptionClient::connect(&first, json!({})).await.unwrap();
    client.subscribe(ORDER_UPDATED, json!({ "id": id })).await.unwrap();
    let mut seen = Vec::new();
    let Received::Next { payload, .. } = client.receive().await.unwrap() else { panic!("the current state") };
    seen.push(payload["data"]["orderUpdated"].clone());

    // Act: the gateway stops mid-stream; the client subscribes again to another one, as a reconnecting client does.
    gateway.stop().await.unwrap();
    let closed = loop {
        match client.receive().await.unwrap() {
            Received::Closed { code, .. } => break code,
            Received::Next { payload, .. } => seen.push(payload["data"]["orderUpdated"].clone()),
            Received::Complete { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let (second, _gateway) = start_gateway(&shop, LiveSettings::default()).await;
    let mut client = SubscriptionClient::connect(&second, json!({})).await.unwrap();
    let subscription_again = client.subscribe(ORDER_UPDATED, json!({ "id": id })).await.unwrap();
    let again = client.results_until_complete(&subscription_again, "orderUpdated").await.unwrap();

    // Assert: what the client keeps (versions newer than it had) is the whole history, without a gap.
    let last_seen = versions(&seen).last().unwrap().0;
    seen.extend(again.into_iter().filter(|order| order["version"].as_i64().unwrap() > last_seen));
    assert_eq!(closed, 1001, "the gateway going away");
    assert_complete_history(&versions(&seen), "REJECTED");
    assert_eq!(seen[0]["version"], 1);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_disconnected_while_the_others_go_on() {
    // Arrange: a client with a small receive buffer whose every update is about 1.6 MB (an order of 20 products
    // with long descriptions, selected 40 times over with aliases), so that not reading fills the socket's buffers
    // after a few; the order records themselves stay small (the embedded broker keeps about 5 MiB per partition).
    let shop = start_shop().await;
    let (gateway, _gateway) = start_gateway(&shop, LiveSettings::default()).await;
    let ada = shop.client.create_account("Ada").await;
    let description = "A long description. ".repeat(100);
    let mut products = Vec::new();
    for n in 0..20 {
        products.push(shop.client.create_product(&format!("Product {n}"), &description, 1.0).await);
    }
    let lines: Vec<(&str, i32)> = products.iter().map(|id| (id.as_str(), 1)).collect();
    let copies: String =
        (0..40).map(|n| format!(" p{n}: products {{ id name description price }}")).collect();
    let amplified = format!(
        "subscription($accountId: ID!) {{ accountOrders(accountId: $accountId) {{ id version status{copies} }} }}"
    );
    let mut stalled =
        SubscriptionClient::connect_with_receive_buffer(&gateway, json!({}), 16 * 1024).await.unwrap();
    stalled.subscribe(&amplified, json!({ "accountId": ada })).await.unwrap();
    let mut reader = SubscriptionClient::connect(&gateway, json!({})).await.unwrap();
    let reading = reader.subscribe(ACCOUNT_ORDERS, json!({ "accountId": ada })).await.unwrap();

    // Act: enough orders to fill the stalled client's socket and then its queue (64 updates by default); one client
    // reads every update, the other none until the end.
    const ORDERS: usize = 60;
    let reading = tokio::spawn(async move {
        let mut updates = Vec::new();
        while updates.len() < 2 * ORDERS {
            match reader.receive().await.unwrap() {
                Received::Next { id, payload } if id == reading => {
                    updates.push(payload["data"]["accountOrders"].clone());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        updates
    });
    for _ in 0..ORDERS {
        shop.client.create_order(&ada, &lines).await;
    }
    let updates = reading.await.unwrap();
    let mut read_late = 0;
    let closed = loop {
        match stalled.receive().await.unwrap_or_else(|error| panic!("after {read_late} updates: {error}")) {
            Received::Next { .. } => read_late += 1,
            Received::Closed { code, reason } => break (code, reason),
            other => panic!("unexpected {other:?}"),
        }
    };

    // Assert: the reader got everything; the one that stalled was cut off, and told why.
    assert_eq!(updates.len(), 2 * ORDERS);
    assert_eq!(updates.iter().filter(|update| update["status"] == "CONFIRMED").count(), ORDERS);
    assert!(read_late < 2 * ORDERS, "the stalled client got all {read_late} updates");
    assert_eq!(closed.0, SLOW_SUBSCRIBER, "{closed:?}");
    assert!(closed.1.contains("too slow"), "{closed:?}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_per_connection() {
    // Arrange
    let shop = start_shop().await;
    let live = LiveSettings { max_subscriptions_per_connection: 2, ..LiveSettings::default() };
    let (gateway, _gateway) = start_gateway(&shop, live).await;
    let ada = shop.client.create_account("Ada").await;
    let mut client = SubscriptionClient::connect(&gateway, json!({})).await.unwrap();

    // Act: three at once (the gateway starts them in no set order).
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(client.subscribe(ACCOUNT_ORDERS, json!({ "accountId": ada })).await.unwrap());
    }

    // Assert: one of them is refused; another connection may still subscribe.
    let refused = match client.receive().await.unwrap() {
        Received::Next { id, payload } => (id, payload["errors"][0]["extensions"]["code"].clone()),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(ids.contains(&refused.0), "{refused:?}");
    assert_eq!(refused.1, "TOO_MANY_REQUESTS", "{refused:?}");
    let mut other = SubscriptionClient::connect(&gateway, json!({})).await.unwrap();
    let placed = shop.client.create_order(&ada, &[(&Uuid::now_v7().to_string(), 1)]).await;
    let id = other.subscribe(ORDER_UPDATED, json!({ "id": placed["id"] })).await.unwrap();
    assert!(!other.results_until_complete(&id, "orderUpdated").await.unwrap().is_empty());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_may_follow_only_its_own_orders() {
    // Arrange: alice's account and order, bob signed in with a token sent in connection_init (as browsers must).
    let shop = start_shop_with(|settings| {
        settings.order_priced_answer_wait_ms = 0;
        settings.auth = LocalAuth::Dev;
    })
    .await;
    let alice = shop.client.with_token(token(&shop, "alice", false).await);
    let account = alice.create_account("Alice").await;
    let placed = alice.create_order(&account, &[(&Uuid::now_v7().to_string(), 1)]).await;
    let order = placed["id"].as_str().unwrap();
    let bearer = |token: String| json!({ "Authorization": format!("Bearer {token}") });
    let mut bob = SubscriptionClient::connect(&base_url(&shop), bearer(token(&shop, "bob", false).await))
        .await
        .unwrap();
    let mut anonymous = SubscriptionClient::connect(&base_url(&shop), json!({})).await.unwrap();
    let mut alice_live =
        SubscriptionClient::connect(&base_url(&shop), bearer(token(&shop, "alice", false).await))
            .await
            .unwrap();

    // Act
    let foreign_order = bob.subscribe(ORDER_UPDATED, json!({ "id": order })).await.unwrap();
    let foreign_order = error_code(&mut bob, &foreign_order).await;
    let missing_order = bob.subscribe(ORDER_UPDATED, json!({ "id": Uuid::now_v7() })).await.unwrap();
    let missing_order = error_code(&mut bob, &missing_order).await;
    let foreign_account = bob.subscribe(ACCOUNT_ORDERS, json!({ "accountId": account })).await.unwrap();
    let foreign_account = error_code(&mut bob, &foreign_account).await;
    let without_token = anonymous.subscribe(ORDER_UPDATED, json!({ "id": order })).await.unwrap();
    let without_token = error_code(&mut anonymous, &without_token).await;
    let own = alice_live.subscribe(ORDER_UPDATED, json!({ "id": order })).await.unwrap();
    let own = alice_live.results_until_complete(&own, "orderUpdated").await.unwrap();

    // Assert: another customer's order looks exactly like one that does not exist.
    assert_eq!(foreign_order, "NOT_FOUND");
    assert_eq!(missing_order, "NOT_FOUND");
    assert_eq!(foreign_account, "NOT_FOUND");
    assert_eq!(without_token, "UNAUTHENTICATED");
    assert_complete_history(&versions(&own), "REJECTED");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_do_not_verify_close_the_connection_with_4403() {
    // Arrange
    let shop = start_shop_with(|settings| settings.auth = LocalAuth::Dev).await;
    let mut client = SubscriptionClient::open(&base_url(&shop)).await.unwrap();

    // Act
    let payload = json!({ "Authorization": "Bearer not.a.token" });
    client.send(json!({ "type": "connection_init", "payload": payload })).await.unwrap();

    // Assert
    assert!(matches!(client.receive().await.unwrap(), Received::Closed { code: 4403, .. }));
    shop.stop().await;
}
