//! What the schema answers, in the process's Prometheus registry ([`shop_platform::metrics`]):
//!
//! - `shop_graphql_requests_total{operation_type,root_field,outcome}`: requests per root field, `ok` or `error`;
//! - `shop_graphql_request_duration_seconds{operation_type,root_field}`: from the request's arrival at the schema
//!   (parsing included) to its answer.
//!
//! The labels come from the schema, never from the client: the operation's name, which the client chooses freely,
//! is not one. `root_field` is a top-level field of `Query`, `Mutation` or `Subscription` (or an introspection
//! field), read from the document only once it has been validated against the schema, so the schema bounds it. A
//! request selecting several root fields counts once under each distinct one (aliases of one field count once),
//! with the whole request's duration: rates per field stay right, and summing over fields counts such a request
//! more than once. A field's outcome is `error` when an error's path starts at it, or when an error has no path
//! (the whole request failed). A document that does not parse, does not validate or names no operation it holds
//! counts once as `operation_type="unknown"`, `root_field="invalid"`.
//!
//! Subscriptions over WebSocket are long-lived streams, not requests: they are not counted here.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, LazyLock, Mutex},
};

use async_graphql::{
    PathSegment, Response, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest},
    parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};
use shop_platform::metrics::{intern, latency_histogram, register};
use tokio::time::Instant;

use super::lock;

/// The `root_field` of a request whose document is not a valid operation of the schema.
const INVALID: &str = "invalid";
/// Its `operation_type`.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation_type: &'static str,
    root_field: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    operation_type: &'static str,
    root_field: &'static str,
}

#[derive(Debug)]
struct GraphqlFamilies {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

static FAMILIES: LazyLock<GraphqlFamilies> = LazyLock::new(|| GraphqlFamilies {
    requests: register(
        "shop_graphql_requests",
        "GraphQL requests, per root field and outcome (ok, error)",
        Family::default(),
    ),
    duration: register(
        "shop_graphql_request_duration_seconds",
        "Time from a GraphQL request's arrival at the schema to its answer, per root field",
        Family::new_with_constructor(latency_histogram),
    ),
});

/// The schema extension that counts and times every request (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphqlMetrics;

impl ExtensionFactory for GraphqlMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        LazyLock::force(&FAMILIES);
        Arc::new(RequestMetrics::default())
    }
}

/// One request's view: what its document holds, then which operation runs.
#[derive(Debug, Default)]
struct RequestMetrics {
    /// Per operation of the parsed document (`None`: the anonymous one), its type and root fields.
    operations: Mutex<BTreeMap<Option<String>, Operation>>,
    /// The operation that ran: known only once the document validated.
    executed: Mutex<Option<Operation>>,
}

/// An operation's type and the root fields it selects: (response key, field name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    operation_type: &'static str,
    root_fields: Vec<(String, String)>,
}

impl RequestMetrics {
    fn record(&self, response: &Response, seconds: f64) {
        let executed = lock(&self.executed).take();
        for (operation_type, root_field, outcome) in observations(executed.as_ref(), response) {
            FAMILIES.requests.get_or_create(&RequestLabels { operation_type, root_field, outcome }).inc();
            FAMILIES.duration.get_or_create(&DurationLabels { operation_type, root_field }).observe(seconds);
        }
    }
}

/// What to count for a request: (operation type, root field, outcome) once per distinct root field of the
/// operation that ran, or once as invalid.
fn observations(
    executed: Option<&Operation>,
    response: &Response,
) -> Vec<(&'static str, &'static str, &'static str)> {
    let outcome = |failed: bool| if failed { "error" } else { "ok" };
    let Some(operation) = executed else {
        return vec![(UNKNOWN, INVALID, outcome(response.is_err()))];
    };
    // Errors without a path are the whole request's; the others belong to the root field their path starts at.
    let whole_request_failed = response.errors.iter().any(|error| error.path.is_empty());
    let failed_keys: HashSet<&str> = response
        .errors
        .iter()
        .filter_map(|error| match error.path.first() {
            Some(PathSegment::Field(key)) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let mut by_field: BTreeMap<&str, bool> = BTreeMap::new();
    for (key, field) in &operation.root_fields {
        *by_field.entry(field).or_default() |= whole_request_failed || failed_keys.contains(key.as_str());
    }
    by_field
        .into_iter()
        // Validated against the schema: the field names are the schema's, so interning them is bounded.
        .map(|(field, failed)| (operation.operation_type, intern(field), outcome(failed)))
        .collect()
}

/// Each operation of `document` and its root fields, fragments followed (a fragment cycle, which validation
/// refuses, is followed once).
fn operations(document: &ExecutableDocument) -> BTreeMap<Option<String>, Operation> {
    let summarize = |definition: &async_graphql::parser::types::OperationDefinition| {
        let operation_type = match definition.ty {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        };
        let mut root_fields = Vec::new();
        collect_fields(document, &definition.selection_set.node, &mut HashSet::new(), &mut root_fields);
        Operation { operation_type, root_fields }
    };
    match &document.operations {
        DocumentOperations::Single(operation) => BTreeMap::from([(None, summarize(&operation.node))]),
        DocumentOperations::Multiple(operations) => operations
            .iter()
            .map(|(name, operation)| (Some(name.to_string()), summarize(&operation.node)))
            .collect(),
    }
}

fn collect_fields<'d>(
    document: &'d ExecutableDocument,
    selection_set: &'d SelectionSet,
    followed: &mut HashSet<&'d str>,
    fields: &mut Vec<(String, String)>,
) {
    for selection in &selection_set.items {
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                fields.push((field.response_key().node.to_string(), field.name.node.to_string()));
            }
            Selection::InlineFragment(fragment) => {
                collect_fields(document, &fragment.node.selection_set.node, followed, fields);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if let Some(fragment) = document.fragments.get(name)
                    && followed.insert(name)
                {
                    collect_fields(document, &fragment.node.selection_set.node, followed, fields);
                }
            }
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestMetrics {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        self.record(&response, started.elapsed().as_secs_f64());
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        *lock(&self.operations) = operations(&document);
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // Called only for a document that validated, with the operation async-graphql picked.
        let executed = {
            let operations = lock(&self.operations);
            match operation_name {
                Some(name) => operations.get(&Some(name.to_owned())).cloned(),
                None if operations.len() == 1 => operations.values().next().cloned(),
                None => None,
            }
        };
        *lock(&self.executed) = executed;
        next.run(ctx, operation_name).await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{ServerError, parser::parse_query};

    use super::*;

    fn executed(query: &str, name: Option<&str>) -> Operation {
        let operations = operations(&parse_query(query).unwrap());
        match name {
            Some(name) => operations[&Some(name.to_owned())].clone(),
            None => operations.into_values().next().unwrap(),
        }
    }

    fn error_at(key: &str) -> ServerError {
        let mut error = ServerError::new("boom", None);
        error.path = vec![PathSegment::Field(key.to_owned()), PathSegment::Index(0)];
        error
    }

    #[test]
    fn each_distinct_root_field_counts_once_whatever_its_aliases_and_fragments() {
        let operation = executed(
            "query Mine { a: order(id: \"1\") { id } b: order(id: \"2\") { id } ...F ... on Query { accounts { id } } }
             fragment F on Query { products { id } ...F }",
            Some("Mine"),
        );

        let counted = observations(Some(&operation), &Response::default());

        assert_eq!(
            counted,
            [("query", "accounts", "ok"), ("query", "order", "ok"), ("query", "products", "ok")],
            "sorted by field, the client's operation name nowhere"
        );
    }

    #[test]
    fn an_error_fails_the_root_field_its_path_starts_at_or_every_field_without_a_path() {
        let operation = executed(
            "mutation { createOrder(order: {}) { id } cancel: cancelOrder(id: \"1\") { id } }",
            None,
        );

        let one = Response::from_errors(vec![error_at("cancel")]);
        assert_eq!(
            observations(Some(&operation), &one),
            [("mutation", "cancelOrder", "error"), ("mutation", "createOrder", "ok")]
        );
        let whole = Response::from_errors(vec![ServerError::new("refused", None)]);
        assert_eq!(
            observations(Some(&operation), &whole),
            [("mutation", "cancelOrder", "error"), ("mutation", "createOrder", "error")]
        );
    }

    #[test]
    fn a_document_that_never_ran_counts_once_as_invalid() {
        let refused = Response::from_errors(vec![ServerError::new("unknown field", None)]);

        assert_eq!(observations(None, &refused), [(UNKNOWN, INVALID, "error")]);
    }
}
