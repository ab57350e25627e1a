//! What one query may cost. Each field costs 1; a list costs its page size times what one of its items costs
//! (`take × child cost`, with `take` defaulting to 20), so the cost is the most values an answer can hold. A query
//! may cost at most [`MAX_COMPLEXITY`], select at most [`MAX_ROOT_FIELDS`] top-level fields (aliases included:
//! each is a call to a service), nest [`MAX_DEPTH`] deep, and put [`MAX_DIRECTIVES`] directives on one field.
//! Introspection is not held to the depth limit but to rules of its own (see [`shape`]), so the standard
//! introspection query passes while deep or wide introspection is refused.
//!
//! Examples: `products(pagination: {take: 100}) { name price }` costs 200;
//! `accounts { name orders { status totalPrice products { name } } }` costs 20 × (1 + 20 × (2 + 1)) = 1 220.

use std::sync::Arc;

use async_graphql::{
    ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};

pub mod shape;

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

/// Checks the shape of each operation before it is validated or run: at most [`MAX_ROOT_FIELDS`] top-level fields
/// and at most [`MAX_DEPTH`] nested fields, with introspection held to its own rules (see [`shape`]).
///
/// async-graphql's complexity counts root fields, but 250 cheap aliases of one field are 250 calls to a service:
/// the count itself must be bounded. Its depth limit is not used: it counts the nested `ofType` of the standard
/// introspection query, which every GraphQL tool sends, and refuses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShapeLimits;

impl ExtensionFactory for ShapeLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ShapeLimits)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ShapeLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        for (_, operation) in document.operations.iter() {
            if let Err(refusal) = shape::check(&document, &operation.node.selection_set) {
                let error = ServerError::new(refusal.to_string(), Some(operation.pos));
                return Err(with_code(error, ErrorCode::GraphqlValidationFailed));
            }
        }
        Ok(document)
    }
}
