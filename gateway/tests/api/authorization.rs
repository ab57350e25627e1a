//! Who may do what, over real HTTP with tokens of a development issuer: a customer sees its own account and orders
//! and nobody else's — by every path GraphQL and REST offer, another customer's data answers exactly what missing
//! data answers —, orders only for itself, and cannot change the catalog; staff may do all of it.

use std::time::Duration;

use serde_json::{Value, json};
use shop_gateway::auth::dev::DevIssuer;
use shop_testkit::graphql::GraphqlClient;

use crate::{
    helpers::{Decided, TestApp, error_codes, spawn_app_deciding},
    openapi::Rest,
    stock::{ADJUST_STOCK, CANCEL_ORDER, product_with_stock},
};

/// An id nothing has.
const MISSING: &str = "0190a0e0-0000-7000-8000-000000000000";

/// The gateway trusting a development issuer, and clients for a staff member and two customers.
struct Shop {
    app: TestApp,
    issuer: DevIssuer,
    staff: GraphqlClient,
    alice: GraphqlClient,
    bob: GraphqlClient,
}

impl Shop {
    async fn spawn() -> Self {
        Self::spawn_deciding(Decided::AtOnce).await
    }

    /// The same, with orders decided as `decided` says.
    async fn spawn_deciding(decided: Decided) -> Self {
        let issuer = DevIssuer::generate("http://issuer.test").unwrap();
        let settings = issuer.settings();
        let app = spawn_app_deciding(decided, move |gateway| gateway.auth = settings).await;
        let client = |subject: &str, staff: bool| app.client.with_token(token(&issuer, subject, staff));
        let (staff, alice, bob) = (client("ops", true), client("alice", false), client("bob", false));
        Self { app, issuer, staff, alice, bob }
    }

    fn token(&self, subject: &str, staff: bool) -> String {
        token(&self.issuer, subject, staff)
    }
}

fn token(issuer: &DevIssuer, subject: &str, staff: bool) -> String {
    issuer.mint(subject, staff, Duration::from_secs(600)).unwrap()
}

/// What each customer has: an account with one order, of a product staff created.
struct Placed {
    product: String,
    alice_account: String,
    alice_order: String,
    bob_account: String,
    bob_order: String,
}

async fn place_one_order_each(shop: &Shop) -> Placed {
    let product = shop.staff.create_product("Kettle", "Boils water", 24.99).await;
    let alice_account = shop.alice.create_account("Alice").await;
    let bob_account = shop.bob.create_account("Bob").await;
    let order_id = |order: Value| order["id"].as_str().unwrap().to_owned();
    let alice_order = order_id(shop.alice.create_order(&alice_account, &[(&product, 1)]).await);
    let bob_order = order_id(shop.bob.create_order(&bob_account, &[(&product, 2)]).await);
    Placed { product, alice_account, alice_order, bob_account, bob_order }
}

/// `response` with every occurrence of `id` replaced by `MISSING`, to compare an answer about `id` with the answer
/// about an id nothing has.
fn as_if_missing(response: &Value, id: &str) -> Value {
    serde_json::from_str(&response.to_string().replace(id, MISSING)).unwrap()
}

#[tokio::test]
async fn over_graphql_a_customer_sees_its_own_account_and_orders_and_others_look_missing_by_every_path() {
    let shop = Shop::spawn().await;
    let placed = place_one_order_each(&shop).await;

    let accounts = shop.alice.data("{ accounts { id orders { id } } }", json!({})).await;
    assert_eq!(
        accounts["accounts"],
        json!([{ "id": placed.alice_account, "orders": [{ "id": placed.alice_order }] }]),
        "a customer's list of accounts is its own"
    );

    // Each way GraphQL offers to reach bob's data, asked by alice, against the same question about a missing id.
    let probes = [
        "query($id: String!) { accounts(id: $id) { id name orders { id } } }",
        "query($id: String!) { order(id: $id) { id accountId status } }",
        "query($id: String!) { mine: accounts { id } theirs: accounts(id: $id) { orders { id products { id } } } }",
        "query($id: String!) { a: order(id: $id) { id } b: order(id: $id) { accountId } }",
    ];
    for (probe, id) in
        probes.iter().flat_map(|probe| [(probe, &placed.bob_account), (probe, &placed.bob_order)])
    {
        let foreign = shop.alice.graphql(probe, json!({ "id": id })).await;
        let missing = shop.alice.graphql(probe, json!({ "id": MISSING })).await;
        assert_eq!(as_if_missing(&foreign, id), missing, "{probe} with {id}");
        assert!(!foreign.to_string().contains(&placed.bob_order), "{probe}: {foreign:#}");
    }

    // Ordering for bob's account is refused as ordering for an account that does not exist is.
    let order = "mutation($account: String!, $product: String!) {
        createOrder(order: { accountId: $account, products: [{ id: $product, quantity: 1 }] }) { id }
    }";
    let foreign =
        shop.alice.graphql(order, json!({ "account": placed.bob_account, "product": placed.product })).await;
    let missing = shop.alice.graphql(order, json!({ "account": MISSING, "product": placed.product })).await;
    assert_eq!(error_codes(&foreign), ["NOT_FOUND"], "{foreign:#}");
    assert_eq!(as_if_missing(&foreign, &placed.bob_account), missing);

    // Bob still has exactly his one order; staff sees everything.
    let bobs = shop.bob.data("{ accounts { orders { id } } }", json!({})).await;
    assert_eq!(bobs["accounts"], json!([{ "orders": [{ "id": placed.bob_order }] }]));
    let all = shop.staff.data("{ accounts { id } }", json!({})).await;
    assert_eq!(all["accounts"].as_array().unwrap().len(), 2, "{all:#}");
    let order = shop
        .staff
        .data("query($id: String!) { order(id: $id) { accountId } }", json!({ "id": placed.bob_order }))
        .await;
    assert_eq!(order["order"]["accountId"], placed.bob_account.as_str());
}

#[tokio::test]
async fn only_staff_may_change_the_catalog_and_an_identity_opens_one_account() {
    let shop = Shop::spawn().await;
    let product = shop.staff.create_product("Kettle", "Boils water", 24.99).await;
    let create = r#"mutation { createProduct(product: { name: "Mug", description: "Holds tea", price: 6.5 }) { id } }"#;
    let update = r#"mutation($id: String!) {
        updateProduct(id: $id, product: { name: "Cheap kettle", description: "Boils water", price: 0.01 }) { price }
    }"#;

    assert_eq!(error_codes(&shop.alice.graphql(create, json!({})).await), ["FORBIDDEN"]);
    assert_eq!(error_codes(&shop.alice.graphql(update, json!({ "id": product })).await), ["FORBIDDEN"]);
    assert_eq!(error_codes(&shop.app.client.graphql(create, json!({})).await), ["UNAUTHENTICATED"]);
    let products = shop.app.client.data("{ products { name price } }", json!({})).await;
    assert_eq!(products["products"], json!([{ "name": "Kettle", "price": 24.99 }]), "nothing changed");

    let updated = shop.staff.data(update, json!({ "id": product })).await;
    assert_eq!(updated["updateProduct"]["price"], 0.01);

    shop.alice.create_account("Alice").await;
    let second = shop
        .alice
        .graphql(r#"mutation { createAccount(account: { name: "Alice 2" }) { id } }"#, json!({}))
        .await;
    assert_eq!(error_codes(&second), ["CONFLICT"], "{second:#}");
}

#[tokio::test]
async fn over_rest_another_customers_account_and_orders_are_404_like_missing_ones() {
    let shop = Shop::spawn().await;
    let placed = place_one_order_each(&shop).await;
    let anonymous = Rest::new(&shop.app).await;
    let alice = anonymous.with_token(&shop.token("alice", false));
    let staff = anonymous.with_token(&shop.token("ops", true));

    for (path, id) in [
        (format!("/api/v1/account/{}", placed.bob_account), &placed.bob_account),
        (format!("/api/v1/orders/{}", placed.bob_account), &placed.bob_account),
        (format!("/api/v1/order/{}", placed.bob_order), &placed.bob_order),
    ] {
        let foreign = alice.get(&path).await;
        let missing = alice.get(&path.replace(id.as_str(), MISSING)).await;
        assert_eq!(foreign.status, 404, "{path}: {:#}", foreign.body);
        assert_eq!(as_if_missing(&foreign.body, id), missing.body, "{path}");
        assert_eq!(staff.get(&path).await.status, 200, "staff reads {path}");
    }
    let accounts = alice.get("/api/v1/accounts").await;
    let ids: Vec<&str> =
        accounts.body.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [placed.alice_account.as_str()]);
    assert_eq!(staff.get("/api/v1/accounts").await.body.as_array().unwrap().len(), 2);

    let order = |account: &str| json!({ "account_id": account, "lines": [{ "product_id": placed.product, "quantity": 1 }] });
    let foreign = alice.post("/api/v1/order", order(&placed.bob_account)).await;
    let missing = alice.post("/api/v1/order", order(MISSING)).await;
    assert_eq!(foreign.status, 422, "{:#}", foreign.body);
    assert_eq!(as_if_missing(&foreign.body, &placed.bob_account), missing.body);

    let product = json!({ "name": "Mug", "description": "Holds tea", "price_cents": 650 });
    let forbidden = alice.post("/api/v1/product", product.clone()).await;
    assert_eq!((forbidden.status, forbidden.body["code"].as_str()), (403, Some("FORBIDDEN")));
    let unauthenticated = anonymous.post("/api/v1/product", product.clone()).await;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.header("www-authenticate"), r#"Bearer realm="shop""#);
    assert_eq!(anonymous.get("/api/v1/accounts").await.status, 401);
    assert_eq!(anonymous.get("/api/v1/products").await.status, 200, "the catalog is public");
    assert_eq!(staff.post("/api/v1/product", product).await.status, 201);
}

#[tokio::test]
async fn only_staff_may_adjust_stock_over_graphql_and_rest() {
    // Arrange
    let shop = Shop::spawn().await;
    let kettle = product_with_stock(&shop.staff, "Kettle", Some(5)).await;
    let kettle = kettle["id"].as_str().unwrap();
    let variables = json!({ "id": kettle, "delta": -5 });
    let anonymous = Rest::new(&shop.app).await;
    let alice = anonymous.with_token(&shop.token("alice", false));
    let staff = anonymous.with_token(&shop.token("ops", true));
    let path = format!("/api/v1/product/{kettle}/stock");

    // Act
    let by_customer = shop.alice.graphql(ADJUST_STOCK, variables.clone()).await;
    let by_anonymous = shop.app.client.graphql(ADJUST_STOCK, variables.clone()).await;
    let by_customer_rest = alice.post(&path, json!({ "delta": -5 })).await;
    let by_anonymous_rest = anonymous.post(&path, json!({ "delta": -5 })).await;

    // Assert: refused, and nothing changed; staff may.
    assert_eq!(error_codes(&by_customer), ["FORBIDDEN"], "{by_customer:#}");
    assert_eq!(error_codes(&by_anonymous), ["UNAUTHENTICATED"], "{by_anonymous:#}");
    assert_eq!((by_customer_rest.status, by_customer_rest.body["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(by_anonymous_rest.status, 401);
    assert_eq!(anonymous.get(&format!("/api/v1/product/{kettle}")).await.body["stock"], 5);
    let by_staff = shop.staff.data(ADJUST_STOCK, json!({ "id": kettle, "delta": -2 })).await;
    assert_eq!(by_staff["adjustStock"]["stock"], 3);
    assert_eq!(staff.post(&path, json!({ "delta": -3 })).await.body["stock"], 0);
}

#[tokio::test]
async fn a_customer_cancels_its_own_orders_and_anothers_looks_missing_whatever_its_state() {
    // Arrange: orders stay pending until cancelled.
    let shop = Shop::spawn_deciding(Decided::Never).await;
    let placed = place_one_order_each(&shop).await;
    shop.app.project_account(&placed.alice_account, "alice").await;
    shop.app.project_account(&placed.bob_account, "bob").await;
    let anonymous = Rest::new(&shop.app).await;
    let alice = anonymous.with_token(&shop.token("alice", false));
    let cancel = |id: &str| format!("/api/v1/order/{id}/cancel");
    let status = "query($id: String!) { order(id: $id) { status } }";

    // Act and assert: alice cancelling bob's pending order is answered as for a missing one, and changes nothing.
    let foreign = shop.alice.graphql(CANCEL_ORDER, json!({ "id": placed.bob_order })).await;
    let missing = shop.alice.graphql(CANCEL_ORDER, json!({ "id": MISSING })).await;
    assert_eq!(error_codes(&foreign), ["NOT_FOUND"], "{foreign:#}");
    assert_eq!(as_if_missing(&foreign, &placed.bob_order), missing);
    let foreign_rest = alice.post(&cancel(&placed.bob_order), json!({})).await;
    let missing_rest = alice.post(&cancel(MISSING), json!({})).await;
    assert_eq!(foreign_rest.status, 404, "{:#}", foreign_rest.body);
    assert_eq!(as_if_missing(&foreign_rest.body, &placed.bob_order), missing_rest.body);
    assert_eq!(
        error_codes(&shop.app.client.graphql(CANCEL_ORDER, json!({ "id": placed.bob_order })).await),
        ["UNAUTHENTICATED"]
    );
    assert_eq!(anonymous.post(&cancel(&placed.bob_order), json!({})).await.status, 401);
    let bobs = shop.bob.data(status, json!({ "id": placed.bob_order })).await;
    assert_eq!(bobs["order"]["status"], "PENDING", "nothing changed");

    // Alice cancels her own; staff cancels bob's.
    let own = shop.alice.data(CANCEL_ORDER, json!({ "id": placed.alice_order })).await;
    assert_eq!(own["cancelOrder"]["status"], "CANCELLED");
    let by_staff = shop.staff.data(CANCEL_ORDER, json!({ "id": placed.bob_order })).await;
    assert_eq!(by_staff["cancelOrder"]["status"], "CANCELLED");

    // A final order of bob's still looks missing to alice, rather than refused as final.
    let foreign_final = shop.alice.graphql(CANCEL_ORDER, json!({ "id": placed.bob_order })).await;
    assert_eq!(as_if_missing(&foreign_final, &placed.bob_order), missing);
    let foreign_final_rest = alice.post(&cancel(&placed.bob_order), json!({})).await;
    assert_eq!(as_if_missing(&foreign_final_rest.body, &placed.bob_order), missing_rest.body);
}

#[tokio::test]
async fn another_customers_confirmed_order_looks_missing_to_cancel_and_its_owner_is_refused_as_final() {
    let shop = Shop::spawn().await;
    let placed = place_one_order_each(&shop).await;

    let foreign = shop.alice.graphql(CANCEL_ORDER, json!({ "id": placed.bob_order })).await;
    let missing = shop.alice.graphql(CANCEL_ORDER, json!({ "id": MISSING })).await;
    let own = shop.bob.graphql(CANCEL_ORDER, json!({ "id": placed.bob_order })).await;

    assert_eq!(as_if_missing(&foreign, &placed.bob_order), missing, "{foreign:#}");
    assert_eq!(error_codes(&own), ["CONFLICT"], "{own:#}");
}
