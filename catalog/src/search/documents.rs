//! The Elasticsearch request bodies and response parsing, kept free of I/O so they are unit-tested whether or not
//! an Elasticsearch is at hand.

use serde_json::{Value, json};
use shop_events::catalog::Product;
use shop_projection::Outcome;
use uuid::Uuid;

/// Settings and explicit mappings of a product index: English-analysed name and description for `multi_match`,
/// the rest stored for display and filtering, nothing mapped dynamically.
pub fn index_definition() -> Value {
    json!({
        "settings": { "number_of_shards": 1 },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "name":        { "type": "text", "analyzer": "english" },
                "description": { "type": "text", "analyzer": "english" },
                "price_cents": { "type": "long" },
                "version":     { "type": "long" },
                "updated_at":  { "type": "date" }
            }
        }
    })
}

/// The lines of a `_bulk` request indexing `products`: for each, an action line and the document. External
/// versioning makes Elasticsearch keep a document only if its version is higher than the stored one, so an older
/// event, delivered late or replayed, never overwrites a newer one.
pub fn bulk_lines(products: &[&Product]) -> Vec<Value> {
    products
        .iter()
        .flat_map(|product| {
            [
                json!({ "index": { "_id": product.id, "version": product.version, "version_type": "external" } }),
                json!({
                    "name": product.name,
                    "description": product.description,
                    "price_cents": product.price_cents,
                    "version": product.version,
                    "updated_at": product.updated_at,
                }),
            ]
        })
        .collect()
}

/// A `_bulk` response that asks for the whole batch to be retried (the cluster is overloaded or failing).
#[derive(Debug, thiserror::Error)]
#[error("Elasticsearch could not index the batch: {0}")]
pub struct BulkRetry(pub String);

/// One outcome per item of a `_bulk` response: indexed → applied; a version conflict (an older or equal version)
/// → ignored; a document refused for good (4xx) → skipped with the reason. Overload or server errors (429, 5xx) ask
/// for a retry of the batch.
pub fn bulk_outcomes(response: &Value) -> Result<Vec<Outcome>, BulkRetry> {
    let items = response["items"].as_array().ok_or_else(|| BulkRetry(format!("no items in {response}")))?;
    items
        .iter()
        .map(|item| {
            let result = &item["index"];
            let status = result["status"].as_u64().unwrap_or(0);
            match status {
                200 | 201 => Ok(Outcome::Applied),
                409 => Ok(Outcome::Ignored),
                429 | 500.. => Err(BulkRetry(result["error"].to_string())),
                _ => Ok(Outcome::Skipped(format!(
                    "Elasticsearch refused the document ({status}): {}",
                    result["error"]
                ))),
            }
        })
        .collect()
}

/// A full-text search over name (weighted higher) and description, optionally restricted to `ids`, best match
/// first; only ids come back, the products themselves are read from Postgres.
pub fn search_request(text: &str, ids: Option<&[Uuid]>, from: i64, size: i64) -> Value {
    let mut filter = Vec::new();
    if let Some(ids) = ids {
        filter.push(json!({ "ids": { "values": ids } }));
    }
    json!({
        "from": from,
        "size": size,
        "_source": false,
        "query": {
            "bool": {
                "must": { "multi_match": { "query": text, "fields": ["name^3", "description"], "operator": "and" } },
                "filter": filter
            }
        },
        "sort": ["_score", { "_doc": "asc" }]
    })
}

/// The ids of a search response's hits, in rank order.
pub fn search_hits(response: &Value) -> Result<Vec<Uuid>, String> {
    response["hits"]["hits"]
        .as_array()
        .ok_or_else(|| format!("no hits in {response}"))?
        .iter()
        .map(|hit| {
            hit["_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| format!("a hit without a UUID id: {hit}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shop_events::envelope::now;

    use super::*;

    fn product(version: i64) -> Product {
        Product {
            id: Uuid::now_v7(),
            name: "Kettle".into(),
            description: "Boils water.".into(),
            price_cents: 2_499,
            stock: None,
            version,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn the_index_maps_every_field_explicitly() {
        let definition = index_definition();

        assert_eq!(definition["mappings"]["dynamic"], "strict");
        assert_eq!(definition["mappings"]["properties"]["name"]["type"], "text");
        assert_eq!(definition["mappings"]["properties"]["price_cents"]["type"], "long");
    }

    #[test]
    fn bulk_lines_index_each_product_with_its_version_as_an_external_version() {
        let (first, second) = (product(1), product(3));

        let lines = bulk_lines(&[&first, &second]);

        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            json!({ "index": { "_id": first.id, "version": 1, "version_type": "external" } })
        );
        assert_eq!(lines[1]["name"], "Kettle");
        assert_eq!(lines[1]["price_cents"], 2_499);
        assert_eq!(lines[2]["index"]["version"], 3);
    }

    #[test]
    fn bulk_outcomes_read_indexed_stale_and_refused_items_and_retry_on_overload() {
        let response = json!({ "errors": true, "items": [
            { "index": { "_id": "a", "status": 201 } },
            { "index": { "_id": "b", "status": 409, "error": { "type": "version_conflict_engine_exception" } } },
            { "index": { "_id": "c", "status": 400, "error": { "type": "document_parsing_exception" } } },
        ]});
        let overloaded =
            json!({ "errors": true, "items": [ { "index": { "status": 429, "error": "too many" } } ] });

        let outcomes = bulk_outcomes(&response).unwrap();

        assert_eq!(outcomes[0], Outcome::Applied);
        assert_eq!(outcomes[1], Outcome::Ignored);
        assert!(
            matches!(&outcomes[2], Outcome::Skipped(reason) if reason.contains("document_parsing_exception"))
        );
        assert!(bulk_outcomes(&overloaded).is_err());
    }

    #[test]
    fn a_search_is_a_multi_match_over_name_and_description_with_paging_and_an_id_filter() {
        let ids = [Uuid::now_v7()];

        let request = search_request("electric kettle", Some(&ids), 20, 10);

        assert_eq!(request["from"], 20);
        assert_eq!(request["size"], 10);
        let multi_match = &request["query"]["bool"]["must"]["multi_match"];
        assert_eq!(multi_match["query"], "electric kettle");
        assert_eq!(multi_match["fields"], json!(["name^3", "description"]));
        assert_eq!(request["query"]["bool"]["filter"][0]["ids"]["values"][0], ids[0].to_string());
        assert_eq!(search_request("kettle", None, 0, 5)["query"]["bool"]["filter"], json!([]));
    }

    #[test]
    fn search_hits_come_back_in_rank_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let response = json!({ "hits": { "total": { "value": 2 }, "hits": [
            { "_id": b.to_string(), "_score": 2.0 }, { "_id": a.to_string(), "_score": 1.0 }
        ]}});

        assert_eq!(search_hits(&response).unwrap(), [b, a]);
        assert!(search_hits(&json!({ "error": "boom" })).is_err());
    }
}
