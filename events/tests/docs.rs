//! `docs/events.md` documents every event type with an example and its JSON Schema. The schemas are generated
//! from the Rust types; this test fails when the document drifts from them. `UPDATE_DOCS=1 cargo test -p
//! shop-events --test docs` rewrites the generated blocks.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shop_events::{
    EventType,
    account::AccountEvent,
    catalog::ProductEvent,
    heartbeat::{self, OutboxHeartbeat},
    order::OrderEvent,
    republish::{self, RepublishCompleted},
    stock::StockEvent,
};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md");

fn at(time: &str) -> DateTime<Utc> {
    time.parse().unwrap()
}

/// One example payload per event type, with fixed ids and times so the document is stable.
fn example(event_type: &EventType) -> Option<Value> {
    let account_id = "01928a6e-5f3c-7b2a-9d41-6f0e2c8b1a01";
    let product = |version: i64, price_cents: i64, stock: Option<i64>| {
        json!({ "product": {
            "id": "01928a6e-7a10-7c55-8e13-2b9d4f6a0c02",
            "name": "Kettle",
            "description": "Stainless steel electric kettle, 1.7 litres.",
            "price_cents": price_cents,
            "stock": stock,
            "version": version,
            "created_at": at("2026-11-21T10:00:00Z"),
            "updated_at": if version == 1 { at("2026-11-21T10:00:00Z") } else { at("2026-11-21T11:30:00Z") },
        }})
    };
    let order = |status: &str, version: i64| {
        let priced = matches!(status, "awaiting_stock" | "confirmed");
        let stocked = version > 2;
        let step =
            |step: &str, at_: &str, detail: Value| json!({ "step": step, "at": at(at_), "detail": detail });
        let mut history = vec![step("placed", "2026-11-21T12:00:00Z", Value::Null)];
        if stocked {
            history.push(step("awaiting_stock", "2026-11-21T12:00:00.042Z", Value::Null));
        }
        match status {
            "confirmed" if stocked => {
                history.push(step("stock_reserved", "2026-11-21T12:00:00.081Z", Value::Null));
                history.push(step("confirmed", "2026-11-21T12:00:00.081Z", Value::Null));
            }
            "confirmed" => history.push(step("confirmed", "2026-11-21T12:00:00.042Z", Value::Null)),
            "rejected" => history.push(step(
                "rejected",
                "2026-11-21T12:00:00.042Z",
                json!("unknown account 01928a6e-5f3c-7b2a-9d41-6f0e2c8b1a01"),
            )),
            "cancelled" => {
                history.push(step("cancelled", "2026-11-21T12:01:10Z", json!("cancelled by the customer")));
                if version == 4 {
                    history.push(step("stock_released", "2026-11-21T12:01:10.120Z", Value::Null));
                }
            }
            _ => {}
        }
        json!({ "order": {
            "id": "01928a70-1b2c-7d3e-8f40-5a6b7c8d9e03",
            "account_id": account_id,
            "status": status,
            "lines": [{
                "product_id": "01928a6e-7a10-7c55-8e13-2b9d4f6a0c02",
                "quantity": 2,
                "product": if priced || stocked {
                    json!({ "name": "Kettle", "description": "Stainless steel electric kettle, 1.7 litres.", "unit_price_cents": 2499 })
                } else { Value::Null },
            }],
            "total_price_cents": if priced { json!(4998) } else { Value::Null },
            "rejection_reason": if status == "rejected" { json!("unknown account 01928a6e-5f3c-7b2a-9d41-6f0e2c8b1a01") } else { Value::Null },
            "version": version,
            "created_at": at("2026-11-21T12:00:00Z"),
            "updated_at": history.last().unwrap()["at"].clone(),
            "history": history,
            "stock_release_pending": status == "cancelled" && version == 3,
        }})
    };
    let reservation = |status: &str, version: i64| {
        json!({ "reservation": {
            "order_id": "01928a70-1b2c-7d3e-8f40-5a6b7c8d9e03",
            "status": status,
            "lines": [{ "product_id": "01928a6e-7a10-7c55-8e13-2b9d4f6a0c02", "quantity": 2 }],
            "held": status == "reserved",
            "shortages": if status == "rejected" {
                json!([{ "product_id": "01928a6e-7a10-7c55-8e13-2b9d4f6a0c02", "requested": 2, "available": 1 }])
            } else { json!([]) },
            "version": version,
            "created_at": at("2026-11-21T12:00:00.060Z"),
            "updated_at": if version == 1 { at("2026-11-21T12:00:00.060Z") } else { at("2026-11-21T12:01:10.100Z") },
        }})
    };
    Some(match event_type.to_string().as_str() {
        "shop.account.created.v1" | "shop.account.republished.v1" => json!({ "account": {
            "id": account_id, "name": "Ada Lovelace", "version": 1, "created_at": at("2026-11-21T09:00:00Z"),
            "owner": "auth0|5f7c8ec7c33c6c004bbafe82",
        }}),
        "shop.product.created.v1" => product(1, 2_499, Some(10)),
        "shop.product.updated.v1" | "shop.product.republished.v1" => product(2, 1_999, Some(8)),
        "shop.order.placed.v1" => order("pending", 1),
        "shop.order.awaiting_stock.v1" => order("awaiting_stock", 2),
        "shop.order.confirmed.v1" | "shop.order.republished.v1" => order("confirmed", 3),
        "shop.order.rejected.v1" => order("rejected", 2),
        "shop.order.cancelled.v1" => order("cancelled", 3),
        "shop.order.stock_released.v1" => order("cancelled", 4),
        "shop.stock.reserved.v1" => reservation("reserved", 1),
        "shop.stock.rejected.v1" => reservation("rejected", 1),
        "shop.stock.released.v1" => reservation("released", 2),
        "shop.outbox.heartbeat.v1" => json!({
            "outbox": "shop_account",
            "as_of": at("2026-11-21T12:00:01.250Z"),
            "published_through": at("2026-11-21T12:00:00.980Z"),
            "pending_topics": ["shop.accounts.v1"],
        }),
        "shop.republish.completed.v1" => json!({
            "run_id": "01928a71-0a1b-7c2d-8e3f-405162738495",
            "topic": "shop.accounts.v1",
            "partitions": [
                { "partition": 0, "start_offset": 1_207 },
                { "partition": 1, "start_offset": 1_180 },
                { "partition": 2, "start_offset": 1_236 },
            ],
            "entities": 1_500,
            "started_at": at("2026-11-21T13:00:00Z"),
            "completed_at": at("2026-11-21T13:00:04.310Z"),
        }),
        _ => return None,
    })
}

fn generated_block(event_type: &EventType, example: &Value, schema: &Value) -> String {
    format!(
        "<!-- BEGIN GENERATED {event_type} -->\nExample payload:\n\n```json\n{}\n```\n\nJSON Schema:\n\n```json\n{}\n```\n<!-- END GENERATED {event_type} -->",
        serde_json::to_string_pretty(example).unwrap(),
        serde_json::to_string_pretty(schema).unwrap(),
    )
}

#[test]
fn the_event_catalog_matches_the_rust_types() {
    let mut doc = std::fs::read_to_string(DOC).expect("docs/events.md exists");
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut drifted = Vec::new();

    let heartbeat = (heartbeat::EVENT_TYPE, schemars::schema_for!(OutboxHeartbeat));
    let republished = (republish::EVENT_TYPE, schemars::schema_for!(RepublishCompleted));
    let schemas = AccountEvent::schemas()
        .into_iter()
        .chain(ProductEvent::schemas())
        .chain(OrderEvent::schemas())
        .chain(StockEvent::schemas())
        .chain([heartbeat, republished]);
    for (event_type, schema) in schemas {
        let example = example(&event_type).unwrap_or_else(|| panic!("write an example for {event_type}"));
        // The example must be a valid instance of its own type.
        let decoded = match event_type.name.split('.').nth(1) {
            Some("account") => {
                AccountEvent::decode(&event_type.to_string(), example.to_string().as_bytes()).map(drop)
            }
            Some("product") => {
                ProductEvent::decode(&event_type.to_string(), example.to_string().as_bytes()).map(drop)
            }
            Some("outbox") => serde_json::from_value::<OutboxHeartbeat>(example.clone())
                .map(drop)
                .map_err(shop_events::DecodeError::Payload),
            Some("stock") => {
                StockEvent::decode(&event_type.to_string(), example.to_string().as_bytes()).map(drop)
            }
            Some("republish") => {
                RepublishCompleted::decode(&event_type.to_string(), example.to_string().as_bytes())
                    .map(drop)
                    .ok_or_else(|| shop_events::DecodeError::Invalid("not a completed republish".into()))
            }
            _ => OrderEvent::decode(&event_type.to_string(), example.to_string().as_bytes()).map(drop),
        };
        decoded.unwrap_or_else(|error| panic!("the example of {event_type} does not decode: {error}"));

        let block = generated_block(&event_type, &example, &serde_json::to_value(&schema).unwrap());
        let begin = format!("<!-- BEGIN GENERATED {event_type} -->");
        let end = format!("<!-- END GENERATED {event_type} -->");
        let (Some(start), Some(stop)) = (doc.find(&begin), doc.find(&end)) else {
            panic!(
                "docs/events.md has no section for {event_type}: add one with the markers {begin} and {end}"
            );
        };
        let current = &doc[start..stop + end.len()];
        if current != block {
            drifted.push(event_type.to_string());
            doc.replace_range(start..stop + end.len(), &block);
        }
    }

    if update {
        std::fs::write(DOC, doc).unwrap();
    } else {
        assert!(
            drifted.is_empty(),
            "docs/events.md is out of date for {drifted:?}; run UPDATE_DOCS=1 cargo test -p shop-events --test docs"
        );
    }
}
