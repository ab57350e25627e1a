//! Parsed documents kept for the next request sending the same text.
//!
//! A shop's clients send a handful of distinct documents — the same `createOrder` mutation with new variables, the
//! same catalog page query — and async-graphql parses each request's text again. [`ParsedDocuments`] answers a
//! text it has seen with a copy of the document parsed then, which costs a fraction of parsing it.
//!
//! Only what parsing does is skipped. Every request's document is still checked by the [`super::limits`]
//! extension and validated against the schema with the request's own variables, and the metrics extension still
//! reads it: the cache sits innermost, below every other extension's `parse_query`.
//!
//! Hostile clients cannot fill it with garbage: a document is kept only once it has passed validation (so its
//! shape and cost are within the schema's limits), only when its text is at most [`MAX_CACHED_TEXT`] bytes, and at
//! most [`CACHED_DOCUMENTS`] of them, the least recently used going first.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{
    ServerError, ServerResult, ValidationResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation},
    parser::types::ExecutableDocument,
};
use lru::LruCache;

use super::lock;

/// Most documents kept.
pub const CACHED_DOCUMENTS: usize = 128;
/// Longest text kept, in bytes; longer documents are parsed every time.
pub const MAX_CACHED_TEXT: usize = 4 * 1024;

type Cache = Mutex<LruCache<Box<str>, ExecutableDocument>>;

/// The schema extension keeping parsed documents (see the module docs). Clones share one cache.
#[derive(Clone)]
pub struct ParsedDocuments {
    cache: Arc<Cache>,
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CACHED_DOCUMENTS).expect("a positive capacity");
        Self { cache: Arc::new(Mutex::new(LruCache::new(capacity))) }
    }
}

impl std::fmt::Debug for ParsedDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedDocuments").field("documents", &lock(&self.cache).len()).finish()
    }
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestDocument { cache: self.cache.clone(), parsed: Mutex::new(None) })
    }
}

/// One request's view of the cache: the text and document it parsed, kept once validation passes.
struct RequestDocument {
    cache: Arc<Cache>,
    parsed: Mutex<Option<(Box<str>, ExecutableDocument)>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestDocument {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_CACHED_TEXT {
            return next.run(ctx, query, variables).await;
        }
        if let Some(document) = lock(&self.cache).get(query) {
            return Ok(document.clone());
        }
        let document = next.run(ctx, query, variables).await?;
        *lock(&self.parsed) = Some((query.into(), document.clone()));
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some((query, document)) = lock(&self.parsed).take() {
            lock(&self.cache).put(query, document);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema, Variables};
    use serde_json::json;

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn double(&self, n: i32) -> i32 {
            n * 2
        }
    }

    fn kept(documents: &ParsedDocuments) -> usize {
        lock(&documents.cache).len()
    }

    fn schema(documents: &ParsedDocuments) -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription).extension(documents.clone()).finish()
    }

    fn doubling(n: serde_json::Value) -> Request {
        Request::new("query($n: Int!) { double(n: $n) }").variables(Variables::from_json(json!({ "n": n })))
    }

    #[tokio::test]
    async fn a_text_sent_again_is_answered_from_its_kept_document_with_the_new_variables() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        let first = schema.execute(doubling(json!(2))).await;
        assert_eq!(first.data.into_json().unwrap(), json!({ "double": 4 }));
        assert_eq!(kept(&documents), 1);
        let again = schema.execute(doubling(json!(21))).await;
        assert_eq!(again.data.into_json().unwrap(), json!({ "double": 42 }));
        assert_eq!(kept(&documents), 1);
    }

    #[tokio::test]
    async fn a_kept_document_is_still_validated_against_each_requests_variables() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        assert!(schema.execute(doubling(json!(2))).await.is_ok());
        let wrong = schema.execute(doubling(json!("two"))).await;
        assert_eq!(wrong.errors.len(), 1, "{:?}", wrong.errors);
        assert!(wrong.errors[0].message.contains("expected type \"Int\""), "{}", wrong.errors[0].message);
    }

    #[tokio::test]
    async fn documents_that_do_not_parse_or_validate_or_are_too_long_are_not_kept() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        assert!(schema.execute("{ double(n: ").await.is_err());
        assert!(schema.execute("{ triple(n: 1) }").await.is_err());
        // A null for a non-null variable is refused by validation, before the document could be kept.
        assert!(schema.execute(doubling(json!(null))).await.is_err());
        let padded = format!("{{ double(n: 1) }}{}", " ".repeat(MAX_CACHED_TEXT));
        let long = schema.execute(padded.as_str()).await;
        assert_eq!(long.data.into_json().unwrap(), json!({ "double": 2 }));
        assert_eq!(kept(&documents), 0);
    }

    #[tokio::test]
    async fn at_most_the_capacity_is_kept_the_least_recently_used_going_first() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        for n in 0..=CACHED_DOCUMENTS {
            assert!(schema.execute(format!("{{ double(n: {n}) }}")).await.is_ok());
        }
        assert_eq!(kept(&documents), CACHED_DOCUMENTS);
        assert!(!lock(&documents.cache).contains("{ double(n: 0) }"));
        assert!(lock(&documents.cache).contains(&*format!("{{ double(n: {CACHED_DOCUMENTS}) }}")));
    }
}
