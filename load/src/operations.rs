//! Each operation as one customer sends it: the GraphQL it posts, and what its answer must hold to count as a
//! success. Choices (who, which product, which page) are drawn before anything is awaited.

use std::{sync::Arc, time::Duration};

use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    client::{Failure, Gateway},
    mix::Operation,
    subscription,
    world::{Customer, World, string},
};

/// Products per page when browsing and searching: the schema's default page.
const PAGE: usize = 20;

const BROWSE: &str = "query($after: String) {
    products(pagination: {take: 20, after: $after}) { id name price stock } }";
const SEARCH: &str =
    "query($query: String!) { products(query: $query, pagination: {take: 20}) { id name price } }";
const CREATE_ORDER: &str = "mutation($order: OrderInput!, $key: String) {
    createOrder(order: $order, idempotencyKey: $key) { id status totalPrice } }";
const ORDER_BY_ID: &str =
    "query($id: String!) { order(id: $id) { id status totalPrice products { id quantity } } }";
const ACCOUNT_ORDERS: &str = "query($id: String!) {
    accounts(id: $id) { id orders(pagination: {take: 10}) { id status totalPrice } } }";

/// Sends one `operation`; `Ok` when the shop answered it as it should.
pub(crate) async fn execute(
    operation: Operation,
    world: &World,
    gateway: &Gateway,
    follow_timeout: Duration,
) -> Result<(), Failure> {
    match operation {
        Operation::SignUp => world.sign_up(gateway).await,
        Operation::Browse => browse(world, gateway).await,
        Operation::Search => search(world, gateway).await,
        Operation::CreateOrder => {
            let (customer, lines) = {
                let mut rng = rand::rng();
                (any_customer(world, &mut rng)?, world.order_lines(&mut rng))
            };
            place_order(world, &customer, lines, gateway).await
        }
        Operation::OrderById => order_by_id(world, gateway).await,
        Operation::AccountOrders => account_orders(world, gateway).await,
        Operation::FollowOrder => {
            let (customer, id) = ordering_customer(world, true)?;
            subscription::follow_order(gateway.endpoint(), customer.token(), &id, follow_timeout).await
        }
    }
}

/// Places an order of `lines` for `customer` and remembers it. Any answered status is a success: `PENDING` and
/// `AWAITING_STOCK` are the shop working asynchronously, `REJECTED` a business outcome, not an API failure.
pub(crate) async fn place_order(
    world: &World,
    customer: &Arc<Customer>,
    lines: Vec<Value>,
    gateway: &Gateway,
) -> Result<(), Failure> {
    // A key per placement, as a careful client sends one so that it may retry; it also exercises the key's claim.
    let variables = json!({
        "order": { "accountId": customer.account_id, "products": lines },
        "key": Uuid::now_v7().to_string(),
    });
    let data = gateway.call(CREATE_ORDER, variables, customer.token()).await?;
    let order = &data["createOrder"];
    string(&order["status"], "NO_ORDER_STATUS")?;
    world.order_placed(customer, string(&order["id"], "NO_ORDER_ID")?);
    Ok(())
}

/// The customer's next page of the catalog, or its first when the last page was the end.
async fn browse(world: &World, gateway: &Gateway) -> Result<(), Failure> {
    let customer = any_customer(world, &mut rand::rng())?;
    let data = gateway.call(BROWSE, json!({ "after": customer.browse_cursor() }), customer.token()).await?;
    let page = products(&data)?;
    let next = if page.len() == PAGE { page.last().and_then(|last| last["id"].as_str()) } else { None };
    customer.set_browse_cursor(next.map(str::to_owned));
    Ok(())
}

async fn search(world: &World, gateway: &Gateway) -> Result<(), Failure> {
    let (customer, term) = {
        let mut rng = rand::rng();
        let term =
            world.search_terms.choose(&mut rng).cloned().ok_or_else(|| Failure::new("NO_SEARCH_TERM"))?;
        (any_customer(world, &mut rng)?, term)
    };
    let data = gateway.call(SEARCH, json!({ "query": term }), customer.token()).await?;
    products(&data).map(drop)
}

/// One of the customer's own orders: the shop must find it.
async fn order_by_id(world: &World, gateway: &Gateway) -> Result<(), Failure> {
    let (customer, id) = ordering_customer(world, false)?;
    let data = gateway.call(ORDER_BY_ID, json!({ "id": id }), customer.token()).await?;
    if data["order"]["id"] != id.as_str() {
        return Err(Failure::new("MISSING_ORDER"));
    }
    Ok(())
}

/// The customer's account with its latest orders: the shop must find the account.
async fn account_orders(world: &World, gateway: &Gateway) -> Result<(), Failure> {
    let customer = any_customer(world, &mut rand::rng())?;
    let data = gateway.call(ACCOUNT_ORDERS, json!({ "id": customer.account_id }), customer.token()).await?;
    match data["accounts"].as_array().map(Vec::as_slice) {
        Some([account]) if account["orders"].is_array() => Ok(()),
        _ => Err(Failure::new("MISSING_ACCOUNT")),
    }
}

fn products(data: &Value) -> Result<&Vec<Value>, Failure> {
    data["products"].as_array().ok_or_else(|| Failure::new("NO_PRODUCTS"))
}

fn any_customer(world: &World, rng: &mut impl rand::Rng) -> Result<Arc<Customer>, Failure> {
    world.customer(rng).ok_or_else(|| Failure::new("NO_CUSTOMER"))
}

/// A customer that placed an order, and one of its orders (the latest when `latest`).
fn ordering_customer(world: &World, latest: bool) -> Result<(Arc<Customer>, String), Failure> {
    let mut rng = rand::rng();
    let customer = world.ordering_customer(&mut rng).ok_or_else(|| Failure::new("NO_ORDER_YET"))?;
    let id = customer.order(&mut rng, latest).ok_or_else(|| Failure::new("NO_ORDER_YET"))?;
    Ok((customer, id))
}
