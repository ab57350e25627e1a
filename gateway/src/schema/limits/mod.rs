//! What one query may cost. Each field costs 1; a list costs its page size times what one of its items costs
//! (`take × child cost`, with `take` defaulting to 20), so the cost is the most values an answer can hold. A query
//! may cost at most [`MAX_COMPLEXITY`], select at most [`MAX_ROOT_FIELDS`] top-level fields (aliases included:
//! each is a call to a service), nest [`MAX_DEPTH`] deep, and put [`MAX_DIRECTIVES`] directives on one field.
//!
//! Examples: `products(pagination: {take: 100}) { name price }` costs 200;
//! `accounts { name orders { status totalPrice products { name } } }` costs 20 × (1 + 20 × (2 + 1)) = 1 220.

use std::sync::Arc;

use async_graphql::{
    Positioned, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::{
    errors::{ErrorCode, with_code},
    inputs::PaginationInput,
};

/// Deepest query accepted (`accounts { orders { products { … } } }` is 4).
pub const MAX_DEPTH: usize = 10;
/// Most a query may cost: roughly, the most values its answer may hold.
pub const MAX_COMPLEXITY: usize = 5_000;
/// Most top-level fields one operation may select, aliases included.
pub const MAX_ROOT_FIELDS: usize = 20;
/// Most directives on one field.
pub const MAX_DIRECTIVES: usize = 10;

/// The cost of a paginated list field: its page size times the cost of one item; one item when `id` names it.
pub fn list_cost(pagination: Option<&PaginationInput>, by_id: bool, child_complexity: usize) -> usize {
    let items = match (by_id, pagination) {
        (true, _) => 1,
        // A page outside 1..=MAX_TAKE is refused when the field runs; cost it at the maximum meanwhile.
        (false, Some(page)) => usize::try_from(page.take).unwrap_or(usize::MAX).clamp(1, MAX_TAKE),
        (false, None) => DEFAULT_TAKE,
    };
    items.saturating_mul(child_complexity.max(1))
}

const DEFAULT_TAKE: usize = shop_platform::pagination::Page::DEFAULT_TAKE as usize;
const MAX_TAKE: usize = shop_platform::pagination::Page::MAX_TAKE as usize;

/// Refuses operations with more than [`MAX_ROOT_FIELDS`] top-level fields. async-graphql's complexity counts them,
/// but 250 cheap aliases of one field are 250 calls to a service: the count itself must be bounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RootFieldLimit;

impl ExtensionFactory for RootFieldLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RootFieldLimit)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RootFieldLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        for (_, operation) in document.operations.iter() {
            let fields = root_fields(&document, &operation.node.selection_set, 0);
            if fields > MAX_ROOT_FIELDS {
                let message = format!(
                    "the operation selects {fields} top-level fields; at most {MAX_ROOT_FIELDS} are allowed"
                );
                let error = ServerError::new(message, Some(operation.pos));
                return Err(with_code(error, ErrorCode::GraphqlValidationFailed));
            }
        }
        Ok(document)
    }
}

/// The fields selected at the top of `selection_set`, through fragments. `depth` bounds fragment chains (cycles
/// are refused by validation later, but this runs before it).
fn root_fields(
    document: &ExecutableDocument,
    selection_set: &Positioned<SelectionSet>,
    depth: usize,
) -> usize {
    if depth > MAX_DEPTH {
        return MAX_ROOT_FIELDS + 1;
    }
    selection_set
        .node
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => {
                root_fields(document, &fragment.node.selection_set, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |fragment| root_fields(document, &fragment.node.selection_set, depth + 1)),
        })
        .fold(0, usize::saturating_add)
}
