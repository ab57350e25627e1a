//! The product index in Elasticsearch: created with an explicit mapping behind an alias, fed in bulk, searched
//! with `multi_match`, and replaced atomically (alias swap) by a rebuild.

use anyhow::Context;
use elasticsearch::{
    BulkParts, Elasticsearch, SearchParts,
    http::{StatusCode, request::JsonBody, transport::Transport},
    indices::{IndicesCreateParts, IndicesDeleteParts, IndicesExistsAliasParts, IndicesGetAliasParts},
};
use serde_json::{Value, json};
use shop_events::catalog::Product;
use shop_platform::{ServiceError, redact};
use shop_projection::Outcome;
use uuid::Uuid;

use super::documents;

/// The product index, reached through its alias.
#[derive(Debug, Clone)]
pub struct ProductIndex {
    client: Elasticsearch,
    alias: String,
}

impl ProductIndex {
    /// A client for the cluster at `url`, using the index behind `alias`.
    pub fn new(url: &str, alias: &str) -> anyhow::Result<Self> {
        let transport = Transport::single_node(url)
            .with_context(|| format!("Invalid Elasticsearch URL {}", redact::url(url)))?;
        Ok(Self { client: Elasticsearch::new(transport), alias: alias.to_owned() })
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Creates the index (and points the alias at it) unless the alias exists.
    pub async fn ensure_exists(&self) -> anyhow::Result<()> {
        let exists = self
            .client
            .indices()
            .exists_alias(IndicesExistsAliasParts::Name(&[&self.alias]))
            .send()
            .await
            .context("Failed to reach Elasticsearch")?;
        if exists.status_code() == StatusCode::OK {
            return Ok(());
        }
        let index = self.create_index().await?;
        self.point_alias_at(&index).await?;
        tracing::info!(alias = %self.alias, index, "Created the product index.");
        Ok(())
    }

    /// Creates a new, empty index with the product mapping and returns its name (`{alias}-{uuid}`).
    pub async fn create_index(&self) -> anyhow::Result<String> {
        let index = format!("{}-{}", self.alias, Uuid::now_v7().simple());
        let response = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&index))
            .body(documents::index_definition())
            .send()
            .await
            .context("Failed to reach Elasticsearch")?;
        ensure_success(response, "create the product index").await?;
        Ok(index)
    }

    /// Moves the alias to `index` in one atomic request and deletes the indices it pointed at before.
    pub async fn point_alias_at(&self, index: &str) -> anyhow::Result<()> {
        let previous = self.indices_behind_alias().await?;
        let mut actions: Vec<Value> =
            previous.iter().map(|old| json!({ "remove": { "index": old, "alias": self.alias } })).collect();
        actions.push(json!({ "add": { "index": index, "alias": self.alias } }));
        let response = self
            .client
            .indices()
            .update_aliases()
            .body(json!({ "actions": actions }))
            .send()
            .await
            .context("Failed to reach Elasticsearch")?;
        ensure_success(response, "move the product alias").await?;
        let old: Vec<&str> = previous.iter().map(String::as_str).filter(|old| *old != index).collect();
        if !old.is_empty() {
            let response = self.client.indices().delete(IndicesDeleteParts::Index(&old)).send().await?;
            ensure_success(response, "delete the replaced product index").await?;
        }
        Ok(())
    }

    async fn indices_behind_alias(&self) -> anyhow::Result<Vec<String>> {
        let response =
            self.client.indices().get_alias(IndicesGetAliasParts::Name(&[&self.alias])).send().await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body: Value = ensure_success(response, "read the product alias").await?;
        Ok(body.as_object().map(|indices| indices.keys().cloned().collect()).unwrap_or_default())
    }

    /// Indexes `products` into `target` (the alias, or a concrete index being rebuilt) in one bulk request, one
    /// outcome per product.
    pub async fn index(&self, target: &str, products: &[&Product]) -> anyhow::Result<Vec<Outcome>> {
        if products.is_empty() {
            return Ok(Vec::new());
        }
        let body: Vec<JsonBody<Value>> =
            documents::bulk_lines(products).into_iter().map(JsonBody::new).collect();
        let response = self
            .client
            .bulk(BulkParts::Index(target))
            .body(body)
            .send()
            .await
            .context("Failed to reach Elasticsearch")?;
        let body = ensure_success(response, "index products").await?;
        Ok(documents::bulk_outcomes(&body)?)
    }

    /// The ids of the products matching `text`, best match first.
    pub async fn search(
        &self,
        text: &str,
        ids: Option<&[Uuid]>,
        from: i64,
        size: i64,
    ) -> Result<Vec<Uuid>, ServiceError> {
        let unavailable = |error: &dyn std::fmt::Display| {
            tracing::warn!(error.message = %error, "Elasticsearch search failed.");
            ServiceError::Unavailable("search is unavailable; retry later".into())
        };
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(documents::search_request(text, ids, from, size))
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        let body = ensure_success(response, "search products").await.map_err(|error| unavailable(&error))?;
        documents::search_hits(&body).map_err(|error| ServiceError::Unexpected(anyhow::anyhow!(error)))
    }

    /// Makes what was indexed visible to searches now (tests; Elasticsearch does it every second on its own).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let response = self
            .client
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[&self.alias]))
            .send()
            .await?;
        ensure_success(response, "refresh the product index").await.map(drop)
    }
}

/// The JSON body of a successful response, or an error saying what failed.
async fn ensure_success(
    response: elasticsearch::http::response::Response,
    what: &str,
) -> anyhow::Result<Value> {
    let status = response.status_code();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        anyhow::bail!("Failed to {what}: Elasticsearch answered {status}: {body}")
    }
}
