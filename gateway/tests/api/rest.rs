//! The REST API over real HTTP, against the real services: every endpoint, every error status, pagination, and the
//! document agreeing with the handlers. Every answer is checked against the served OpenAPI document (see
//! `openapi.rs`).

use std::collections::BTreeSet;

use reqwest::{Method, header};
use serde_json::{Value, json};
use shop_events::{account::AccountEvent, catalog::ProductEvent, order::OrderEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    helpers::{spawn_app, spawn_app_with},
    openapi::{Rest, matches_template},
};

async fn account(rest: &Rest, name: &str) -> Value {
    let created = rest.post("/api/v1/account", json!({ "name": name })).await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    created.body
}

async fn product(rest: &Rest, name: &str, price_cents: i64) -> Value {
    let body = json!({ "name": name, "description": format!("A {name}"), "price_cents": price_cents });
    let created = rest.post("/api/v1/product", body).await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    created.body
}

#[tokio::test]
async fn the_original_systems_eight_endpoints_answer_json_resources() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;

    let created = rest.post("/api/v1/account", json!({ "name": "  Ada Lovelace " })).await;
    assert_eq!(created.status, 201);
    let ada = created.body.clone();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["version"], 1);
    assert_eq!(created.header("location"), format!("/api/v1/account/{}", ada["id"].as_str().unwrap()));
    assert_eq!(rest.get(created.header("location")).await.body, ada);
    let accounts = rest.get("/api/v1/accounts").await;
    assert_eq!(accounts.body, json!([ada]));

    let kettle = product(&rest, "Kettle", 2_499).await;
    assert_eq!(kettle["price_cents"], 2_499);
    assert_eq!(kettle["description"], "A Kettle");
    let mug = product(&rest, "Mug", 650).await;
    assert_eq!(rest.get(&format!("/api/v1/product/{}", kettle["id"].as_str().unwrap())).await.body, kettle);
    assert_eq!(rest.get("/api/v1/products").await.body, json!([kettle, mug]));

    let order = json!({ "account_id": ada["id"], "lines": [
        { "product_id": kettle["id"], "quantity": 1 },
        { "product_id": mug["id"], "quantity": 2 },
    ]});
    let placed = rest.post("/api/v1/order", order).await;
    assert_eq!(placed.status, 201, "decided at once when the order service validates synchronously");
    let order = placed.body.clone();
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["total_price_cents"], 2_499 + 2 * 650);
    assert_eq!(
        order["lines"][1]["product"],
        json!({ "name": "Mug", "description": "A Mug", "unit_price_cents": 650 })
    );
    assert_eq!(rest.get(placed.header("location")).await.body, order);
    let orders = rest.get(&format!("/api/v1/orders/{}", ada["id"].as_str().unwrap())).await;
    assert_eq!(orders.status, 200);
    assert_eq!(orders.body, json!([order]));
}

#[tokio::test]
async fn a_product_is_replaced_with_the_optimistic_version_and_a_stale_one_is_a_409() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let kettle = product(&rest, "Kettle", 2_499).await;
    let path = format!("/api/v1/product/{}", kettle["id"].as_str().unwrap());

    let updated =
        rest.put(&path, json!({ "name": "Kettle", "price_cents": 1_999, "expected_version": 1 })).await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.body["description"], "", "PUT replaces every field; an absent description is empty");

    let stale = rest.put(&path, json!({ "name": "Kettle", "price_cents": 1, "expected_version": 1 })).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.body["code"], "CONFLICT");
    assert_eq!(stale.body["type"], "/api/v1/problems/conflict");
    assert_eq!(rest.get(&path).await.body["price_cents"], 1_999, "nothing changed");

    let unconditional = rest.put(&path, json!({ "name": "Kettle", "price_cents": 1_899 })).await;
    assert_eq!(unconditional.body["version"], 3);
    let missing = format!("/api/v1/product/{}", Uuid::now_v7());
    assert_eq!(rest.put(&missing, json!({ "name": "Kettle", "price_cents": 1 })).await.status, 404);
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ids_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let unknown = Uuid::now_v7();

    for path in ["account", "product", "order", "orders"] {
        let missing = rest.get(&format!("/api/v1/{path}/{unknown}")).await;
        assert_eq!(missing.status, 404, "{path}: {:#}", missing.body);
        assert_eq!(missing.body["code"], "NOT_FOUND");
        assert_eq!(missing.header("content-type"), "application/problem+json");

        let malformed = rest.get(&format!("/api/v1/{path}/not-a-uuid")).await;
        assert_eq!(malformed.status, 400, "{path}: {:#}", malformed.body);
        let parameter = if path == "orders" { "account_id" } else { "id" };
        assert_eq!(malformed.fields(), [parameter]);
        assert!(malformed.body["detail"].as_str().unwrap().contains("`not-a-uuid`"), "{:#}", malformed.body);
    }
}

#[tokio::test]
async fn invalid_bodies_are_problems_naming_the_fields_and_nothing_is_created() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;

    let blank = rest.post("/api/v1/account", json!({ "name": "  " })).await;
    assert_eq!((blank.status, blank.fields()), (422, vec!["name"]));
    assert_eq!(blank.body["code"], "BAD_USER_INPUT");
    assert_eq!(blank.body["type"], "/api/v1/problems/invalid-input");

    let negative = rest.post("/api/v1/product", json!({ "name": "", "price_cents": -1 })).await;
    assert_eq!((negative.status, negative.fields()), (422, vec!["name", "price_cents"]));

    let missing_field = rest.post("/api/v1/product", json!({ "name": "Kettle" })).await;
    assert_eq!(missing_field.status, 422);
    assert!(
        missing_field.body["detail"].as_str().unwrap().contains("price_cents"),
        "{:#}",
        missing_field.body
    );

    // The original system's clients send a float `price`: named as unknown, not silently dropped.
    let unknown_field = rest.post("/api/v1/product", json!({ "name": "Kettle", "price": 24.99 })).await;
    assert_eq!(unknown_field.status, 422);
    assert!(unknown_field.body["detail"].as_str().unwrap().contains("`price`"), "{:#}", unknown_field.body);

    let wrong_type = rest.post("/api/v1/account", json!({ "name": 42 })).await;
    assert_eq!(wrong_type.status, 422);

    let not_json = rest
        .send(
            rest.request(Method::POST, "/api/v1/account")
                .header(header::CONTENT_TYPE, "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.body["code"], "BAD_REQUEST");

    let form = rest
        .send(
            rest.request(Method::POST, "/api/v1/account")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("name=Ada"),
        )
        .await;
    assert_eq!(form.status, 415);
    assert_eq!(form.body["code"], "UNSUPPORTED_MEDIA_TYPE");
    let no_type = rest.send(rest.request(Method::POST, "/api/v1/account").body(r#"{"name":"Ada"}"#)).await;
    assert_eq!(no_type.status, 415);

    assert_eq!(rest.get("/api/v1/accounts").await.body, json!([]));
    assert_eq!(rest.get("/api/v1/products").await.body, json!([]));
}

#[tokio::test]
async fn orders_with_unknown_references_or_bad_lines_are_422_and_not_placed() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let ada = account(&rest, "Ada").await;
    let kettle = product(&rest, "Kettle", 2_499).await;

    let unknown_product =
        json!({ "account_id": ada["id"], "lines": [{ "product_id": Uuid::now_v7(), "quantity": 1 }] });
    let refused = rest.post("/api/v1/order", unknown_product).await;
    assert_eq!(refused.status, 422, "{:#}", refused.body);
    assert_eq!(refused.body["type"], "/api/v1/problems/unknown-reference");
    assert_eq!(refused.body["code"], "NOT_FOUND");

    let unknown_account =
        json!({ "account_id": Uuid::now_v7(), "lines": [{ "product_id": kettle["id"], "quantity": 1 }] });
    assert_eq!(rest.post("/api/v1/order", unknown_account).await.status, 422);

    let zero = json!({ "account_id": ada["id"], "lines": [
        { "product_id": kettle["id"], "quantity": 1 },
        { "product_id": kettle["id"], "quantity": 0 },
    ]});
    let zero = rest.post("/api/v1/order", zero).await;
    assert_eq!((zero.status, zero.fields()), (422, vec!["lines[1].quantity"]));

    let empty = rest.post("/api/v1/order", json!({ "account_id": ada["id"], "lines": [] })).await;
    assert_eq!((empty.status, empty.fields()), (422, vec!["lines"]));

    let negative =
        json!({ "account_id": ada["id"], "lines": [{ "product_id": kettle["id"], "quantity": -1 }] });
    assert_eq!(rest.post("/api/v1/order", negative).await.status, 422);
    let malformed_id =
        json!({ "account_id": "ada", "lines": [{ "product_id": kettle["id"], "quantity": 1 }] });
    assert_eq!(rest.post("/api/v1/order", malformed_id).await.status, 422);

    let orders = rest.get(&format!("/api/v1/orders/{}", ada["id"].as_str().unwrap())).await;
    assert_eq!(orders.body, json!([]));
}

#[tokio::test]
async fn lists_are_paged_within_the_graphql_caps_and_a_full_page_links_to_the_next() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(account(&rest, &format!("Customer {i}")).await["name"].clone());
    }

    let mut seen = Vec::new();
    let mut next = Some("/api/v1/accounts?take=2".to_owned());
    while let Some(page) = next {
        let answer = rest.get(&page).await;
        assert_eq!(answer.status, 200);
        seen.extend(answer.body.as_array().unwrap().iter().map(|account| account["name"].clone()));
        next = answer.headers.get(header::LINK).map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(r#">; rel="next""#), "{link}");
            link[1..link.find('>').unwrap()].to_owned()
        });
        assert!(seen.len() <= 6, "the links go round in circles");
    }
    assert_eq!(seen, names, "every account once, oldest first, by following `Link`");

    assert_eq!(rest.get("/api/v1/accounts?skip=3&take=1").await.body[0]["name"], names[3]);
    for (query, field) in [("take=101", "take"), ("take=0", "take"), ("skip=9901", "skip")] {
        let refused = rest.get(&format!("/api/v1/accounts?{query}")).await;
        assert_eq!((refused.status, refused.fields()), (400, vec![field]), "{query}");
    }
    for query in ["take=abc", "skip=-1", "after=nope"] {
        assert_eq!(rest.get(&format!("/api/v1/products?{query}")).await.status, 400, "{query}");
    }
    assert_eq!(rest.get("/api/v1/accounts?take=100&skip=9900").await.body, json!([]));
}

#[tokio::test]
async fn products_are_searched_with_query() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    product(&rest, "Kettle", 2_499).await;
    product(&rest, "Teapot", 1_999).await;

    let found = rest.get("/api/v1/products?query=kettle").await;

    assert_eq!(found.status, 200);
    let names: Vec<_> =
        found.body.as_array().unwrap().iter().map(|product| product["name"].clone()).collect();
    assert_eq!(names, ["Kettle"]);
    assert!(found.headers.get(header::LINK).is_none(), "a search is not paged with a cursor");
    let too_long = rest.get(&format!("/api/v1/products?query={}", "a".repeat(501))).await;
    assert_eq!((too_long.status, too_long.fields()), (422, vec!["query"]));
    // Found by Schemathesis: a NUL reached Postgres, which refused it, and the answer was a 500.
    let nul = rest.get("/api/v1/products?query=ket%00tle").await;
    assert_eq!((nul.status, nul.fields()), (422, vec!["query"]));
}

#[tokio::test]
async fn an_unavailable_service_is_a_503_with_retry_after() {
    let mut app = spawn_app().await;
    let rest = Rest::new(&app).await;
    app.stop_catalog_service().await;

    let answer = rest.get(&format!("/api/v1/product/{}", Uuid::now_v7())).await;

    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["code"], "UNAVAILABLE");
    assert_eq!(answer.header("retry-after"), "1");
    assert_eq!(rest.get("/api/v1/accounts").await.status, 200, "the other services still answer");
}

#[tokio::test]
async fn oversized_bodies_are_413_problems_whether_declared_or_chunked() {
    let app = spawn_app_with(|settings| settings.http_max_body_bytes = 1024).await;
    let rest = Rest::new(&app).await;
    let big = json!({ "name": "x".repeat(2_000) });

    let declared = rest.post("/api/v1/account", big).await;
    assert_eq!(declared.status, 413);
    assert_eq!(declared.body["code"], "PAYLOAD_TOO_LARGE");

    let mut connection = tokio::net::TcpStream::connect(app.address()).await.unwrap();
    let head = "POST /api/v1/account HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let chunk = format!("800\r\n{}\r\n", " ".repeat(0x800));
    connection.write_all(head.as_bytes()).await.unwrap();
    let _ = connection.write_all(chunk.as_bytes()).await;
    let _ = connection.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_lowercase().contains("content-type: application/problem+json"), "{answer}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problems_and_405_says_what_is_allowed() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;

    let unknown = rest.get("/api/v1/customers").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["type"], "/api/v1/problems/not-found");

    let delete =
        rest.send(rest.request(Method::DELETE, &format!("/api/v1/account/{}", Uuid::now_v7()))).await;
    assert_eq!(delete.status, 405);
    assert_eq!(delete.body["type"], "/api/v1/problems/method-not-allowed");
    assert!(delete.header("allow").contains("GET"), "{delete:#?}");
}

#[tokio::test]
async fn every_problem_type_uri_answers_its_description() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;

    for kind in shop_gateway::rest::problem::ProblemType::ALL {
        let described = rest.get(&kind.uri()).await;
        assert_eq!(described.status, 200, "{}", kind.uri());
        assert_eq!(described.body["type"], kind.uri());
        assert_eq!(described.body["status"], kind.status().as_u16());
        assert!(!described.body["description"].as_str().unwrap().is_empty());
    }
    assert_eq!(rest.get("/api/v1/problems/nonsense").await.status, 404);
}

/// Sends each documented operation once (with ids that exist nowhere and empty bodies): it must reach a handler —
/// not axum's 404 for an unknown route or 405 for an unknown method. And every method a documented path does not
/// list must answer 405: no route is served undocumented, no documented route is missing.
#[tokio::test]
async fn the_document_and_the_routes_agree() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let paths = rest.document["paths"].as_object().unwrap().clone();
    let methods = ["get", "post", "put", "patch", "delete"];

    for (template, item) in &paths {
        let path = template
            .replace("{id}", &Uuid::now_v7().to_string())
            .replace("{account_id}", &Uuid::now_v7().to_string());
        let path = path.replace("{slug}", "conflict");
        for method in methods {
            let request = rest.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &path);
            let request = if method == "get" { request } else { request.json(&json!({})) };
            let answer = rest.send(request).await;
            if item[method].is_null() {
                assert_eq!(answer.status, 405, "{method} {template} is served but not documented");
            } else {
                assert_ne!(answer.status, 405, "{method} {template} is documented but not served");
                assert!(
                    answer.status != 404 || answer.body["detail"] != "not found",
                    "{method} {template} is documented but not routed"
                );
            }
        }
    }
    let originals = [
        "/account",
        "/account/{id}",
        "/accounts",
        "/product",
        "/product/{id}",
        "/products",
        "/order",
        "/orders/{account_id}",
    ];
    for original in originals {
        let path = format!("/api/v1{original}");
        assert!(paths.keys().any(|template| matches_template(template, &path)), "{path} is not documented");
    }
}

/// The JSON Schema of the first event of a family.
fn event_schema<T: serde::Serialize>(schemas: Vec<(shop_events::EventType, T)>) -> Value {
    serde_json::to_value(&schemas.first().unwrap().1).unwrap()
}

/// The property names of an object's schema.
fn properties(schema: &Value) -> BTreeSet<String> {
    schema["properties"].as_object().unwrap().keys().cloned().collect()
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema["required"].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_owned()).collect()
}

/// A REST resource and the entity of the same name in the events have the same fields, so a client keeps one model
/// for the API and the topics.
#[tokio::test]
async fn resources_have_the_shape_of_the_entities_in_the_events() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let events = [
        event_schema(AccountEvent::schemas()),
        event_schema(ProductEvent::schemas()),
        event_schema(OrderEvent::schemas()),
    ];

    for name in ["Account", "Product", "Order", "OrderLine", "PricedProduct", "OrderStep"] {
        let resource = &rest.document["components"]["schemas"][name];
        let entity = events.iter().find_map(|schema| schema["$defs"].get(name)).unwrap();
        assert_eq!(properties(resource), properties(entity), "{name}");
        assert_eq!(required(resource), required(entity), "{name}");
    }
}
