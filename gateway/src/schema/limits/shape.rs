//! The shape of one operation, checked on the parsed document before it is validated or run.
//!
//! - At most [`MAX_ROOT_FIELDS`] top-level fields, counted through fragments.
//! - At most [`MAX_DEPTH`] nested fields, counted through fragments; an introspection field (`__schema`,
//!   `__type`) counts as one, and what it selects is held to the introspection rules instead.
//! - Introspection: at most [`MAX_INTROSPECTION_DEPTH`] nested fields; `fields`, `inputFields`, `interfaces` and
//!   `possibleTypes` nested at most [`MAX_INTROSPECTION_LISTS`] deep (graphql-js's rule); no field selected twice
//!   in one selection (aliases included), at most [`MAX_INTROSPECTION_WIDTH`] in one, and `__schema` no more than
//!   once per operation. The standard
//!   introspection query meets them all; its `ofType` chains are long but cheap, while the answer's size is what
//!   repeated or nested lists would multiply.
//!
//! The walk remembers what it has checked per fragment (and per selection, inside introspection), so a document
//! whose fragments spread each other many times costs what its text costs, not what its expansion would.

use std::{
    collections::{HashMap, HashSet},
    fmt,
};

use async_graphql::{
    Positioned,
    parser::types::{ExecutableDocument, Field, Selection, SelectionSet},
};

use super::{MAX_DEPTH, MAX_ROOT_FIELDS};

/// Deepest an introspection selection may nest, `__schema` or `__type` included. The standard introspection query
/// nests 13 deep (15 with graphql-js 17's deeper type references).
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// Most fields one introspection selection may select, through fragments. No introspection type has more than a
/// dozen fields, and none may be selected twice.
pub const MAX_INTROSPECTION_WIDTH: usize = 32;
/// Most of `fields`, `inputFields`, `interfaces` and `possibleTypes` one introspection path may nest.
pub const MAX_INTROSPECTION_LISTS: usize = 2;

/// Why an operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyRootFields,
    TooDeep,
    IntrospectionTooDeep,
    IntrospectionListsTooDeep,
    IntrospectionTooWide,
    IntrospectionRepeats(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRootFields => {
                write!(f, "the operation selects more than {MAX_ROOT_FIELDS} top-level fields")
            }
            Self::TooDeep => write!(f, "the operation nests fields more than {MAX_DEPTH} deep"),
            Self::IntrospectionTooDeep => {
                write!(f, "the introspection nests fields more than {MAX_INTROSPECTION_DEPTH} deep")
            }
            Self::IntrospectionListsTooDeep => write!(
                f,
                "the introspection nests `fields`, `inputFields`, `interfaces` and `possibleTypes` more than \
                 {MAX_INTROSPECTION_LISTS} deep"
            ),
            Self::IntrospectionTooWide => {
                write!(f, "an introspection selection selects more than {MAX_INTROSPECTION_WIDTH} fields")
            }
            Self::IntrospectionRepeats(name) => {
                write!(f, "the introspection selects `{name}` more than once in one selection")
            }
        }
    }
}

/// Checks one operation, whose selection is `selection_set`, against every rule of this module.
pub fn check(document: &ExecutableDocument, selection_set: &Positioned<SelectionSet>) -> Result<(), Refusal> {
    let mut walk = Walk::new(document);
    let mut roots = Vec::new();
    walk.expand(selection_set, &mut roots, &mut Vec::new(), MAX_ROOT_FIELDS)
        .map_err(|TooWide| Refusal::TooManyRootFields)?;
    if roots.iter().filter(|field| field.node.name.node == "__schema").count() > 1 {
        return Err(Refusal::IntrospectionRepeats("__schema".into()));
    }
    walk.depth(selection_set, 0)?;
    Ok(())
}

/// One check's memory of what it has seen.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// Fragments whose depth is known: the fields they nest.
    fragment_depths: HashMap<&'a str, usize>,
    /// Fragments on the path being walked (a cycle is refused by validation later; here it only must not loop).
    on_path: Vec<&'a str>,
    /// Introspection selections already checked, by address, with the lists above them and their depth.
    introspected: HashSet<(usize, usize, usize)>,
}

/// More fields in one selection than allowed.
struct TooWide;

impl<'a> Walk<'a> {
    fn new(document: &'a ExecutableDocument) -> Self {
        Self { document, fragment_depths: HashMap::new(), on_path: Vec::new(), introspected: HashSet::new() }
    }

    /// The most fields any path below `selection_set` nests, refused past [`MAX_DEPTH`] counting the `above`
    /// fields that enclose it.
    fn depth(&mut self, selection_set: &'a Positioned<SelectionSet>, above: usize) -> Result<usize, Refusal> {
        let mut deepest = 0;
        for selection in &selection_set.node.items {
            let depth = match &selection.node {
                Selection::Field(field) if is_introspection(&field.node) => {
                    self.introspection(&field.node.selection_set, 0, 1)?;
                    1
                }
                Selection::Field(field) => {
                    if above + 1 > MAX_DEPTH {
                        return Err(Refusal::TooDeep);
                    }
                    1 + self.depth(&field.node.selection_set, above + 1)?
                }
                Selection::InlineFragment(fragment) => self.depth(&fragment.node.selection_set, above)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    self.fragment_depth(name, above)?
                }
            };
            if above + depth > MAX_DEPTH {
                return Err(Refusal::TooDeep);
            }
            deepest = deepest.max(depth);
        }
        Ok(deepest)
    }

    fn fragment_depth(&mut self, name: &'a str, above: usize) -> Result<usize, Refusal> {
        if let Some(depth) = self.fragment_depths.get(name) {
            return Ok(*depth);
        }
        let Some(fragment) = self.document.fragments.get(name) else { return Ok(0) };
        if self.on_path.contains(&name) {
            return Ok(0);
        }
        self.on_path.push(name);
        let depth = self.depth(&fragment.node.selection_set, above);
        self.on_path.pop();
        let depth = depth?;
        self.fragment_depths.insert(name, depth);
        Ok(depth)
    }

    /// Checks what an introspection field selects: `lists` counted lists enclose it, and `depth` fields (the
    /// introspection field included).
    fn introspection(
        &mut self,
        selection_set: &'a Positioned<SelectionSet>,
        lists: usize,
        depth: usize,
    ) -> Result<(), Refusal> {
        let address = selection_set as *const _ as usize;
        if !self.introspected.insert((address, lists, depth)) {
            return Ok(());
        }
        let mut fields = Vec::new();
        self.expand(selection_set, &mut fields, &mut Vec::new(), MAX_INTROSPECTION_WIDTH)
            .map_err(|TooWide| Refusal::IntrospectionTooWide)?;
        let mut seen = HashSet::new();
        for field in fields {
            let name = field.node.name.node.as_str();
            if !seen.insert(name) {
                return Err(Refusal::IntrospectionRepeats(name.to_owned()));
            }
            if field.node.selection_set.node.items.is_empty() {
                continue;
            }
            let lists = lists + usize::from(is_counted_list(name));
            if lists > MAX_INTROSPECTION_LISTS {
                return Err(Refusal::IntrospectionListsTooDeep);
            }
            if depth + 1 >= MAX_INTROSPECTION_DEPTH {
                return Err(Refusal::IntrospectionTooDeep);
            }
            self.introspection(&field.node.selection_set, lists, depth + 1)?;
        }
        Ok(())
    }

    /// Collects the fields `selection_set` selects at its own level, through fragments, stopping past `most`.
    fn expand(
        &self,
        selection_set: &'a Positioned<SelectionSet>,
        fields: &mut Vec<&'a Positioned<Field>>,
        on_path: &mut Vec<&'a str>,
        most: usize,
    ) -> Result<(), TooWide> {
        for selection in &selection_set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    if fields.len() == most {
                        return Err(TooWide);
                    }
                    fields.push(field);
                }
                Selection::InlineFragment(fragment) => {
                    self.expand(&fragment.node.selection_set, fields, on_path, most)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(fragment) = self.document.fragments.get(name) else { continue };
                    if on_path.contains(&name) {
                        continue;
                    }
                    on_path.push(name);
                    let expanded = self.expand(&fragment.node.selection_set, fields, on_path, most);
                    on_path.pop();
                    expanded?;
                }
            }
        }
        Ok(())
    }
}

fn is_introspection(field: &Field) -> bool {
    matches!(field.name.node.as_str(), "__schema" | "__type")
}

/// The introspection lists whose nesting multiplies the answer (graphql-js's `MaxIntrospectionDepthRule`).
fn is_counted_list(name: &str) -> bool {
    matches!(name, "fields" | "inputFields" | "interfaces" | "possibleTypes")
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn refusal(query: &str) -> Option<Refusal> {
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        check(&document, &operation.node.selection_set).err()
    }

    fn nested(names: &[&str], leaf: &str) -> String {
        names.iter().rev().fold(leaf.to_owned(), |inner, name| format!("{name} {{ {inner} }}"))
    }

    #[test]
    fn the_standard_introspection_query_passes() {
        assert_eq!(refusal(include_str!("../../../tests/api/introspection.graphql")), None);
    }

    #[test]
    fn ordinary_fields_nest_at_most_max_depth_deep_through_fragments() {
        let deepest = nested(&["a"; MAX_DEPTH - 1], "b");
        let too_deep = nested(&["a"; MAX_DEPTH], "b");
        let through_fragments = "{ a { ...F } } fragment F on A { b { ...G } } fragment G on B { \
                                 c { d { e { f { g { h { i { j { k } } } } } } } } }";

        assert_eq!(refusal(&format!("{{ {deepest} }}")), None);
        assert_eq!(refusal(&format!("{{ {too_deep} }}")), Some(Refusal::TooDeep));
        assert_eq!(refusal(through_fragments), Some(Refusal::TooDeep));
    }

    #[test]
    fn introspection_may_not_nest_lists_repeat_fields_or_nest_without_end() {
        let lists = nested(&["__schema", "types", "fields", "type", "fields", "type", "fields"], "name");
        let aliases = "{ __schema { a: types { name } b: types { name } } }";
        let repeated_through_fragments = "{ __schema { types { ...A ...B } } } \
                                          fragment A on __Type { fields { name } } \
                                          fragment B on __Type { fields { name } }";
        let schemas = "{ a: __schema { queryType { name } } b: __schema { queryType { name } } }";
        let of_types = nested(
            &["__type(name: \"Query\")"].into_iter().chain(["ofType"; 25]).collect::<Vec<_>>(),
            "name",
        );

        assert_eq!(refusal(&format!("{{ {lists} }}")), Some(Refusal::IntrospectionListsTooDeep));
        assert_eq!(refusal(aliases), Some(Refusal::IntrospectionRepeats("types".into())));
        assert_eq!(refusal(repeated_through_fragments), Some(Refusal::IntrospectionRepeats("fields".into())));
        assert_eq!(refusal(schemas), Some(Refusal::IntrospectionRepeats("__schema".into())));
        assert_eq!(refusal(&format!("{{ {of_types} }}")), Some(Refusal::IntrospectionTooDeep));
    }

    #[test]
    fn fragments_spreading_each_other_many_times_are_walked_once_each() {
        // Expanded, each of these would hold 2^40 fields.
        let chain = |leaf: &str| {
            let mut fragments: Vec<String> =
                (0..40).map(|i| format!("fragment F{i} on T {{ ...F{} ...F{} }}", i + 1, i + 1)).collect();
            fragments.push(format!("fragment F40 on T {{ {leaf} }}"));
            fragments.join("\n")
        };

        let ordinary = format!("{{ a {{ ...F0 }} }}\n{}", chain("b { c }"));
        let introspection = format!("{{ __schema {{ types {{ ...F0 }} }} }}\n{}", chain("name"));
        let roots = format!("{{ ...F0 }}\n{}", chain("a"));

        assert_eq!(refusal(&ordinary), None);
        assert_eq!(refusal(&introspection), Some(Refusal::IntrospectionTooWide));
        assert_eq!(refusal(&roots), Some(Refusal::TooManyRootFields));
    }

    #[test]
    fn fragment_cycles_end_the_walk_and_are_left_to_validation() {
        let cycle = "{ a { ...F } } fragment F on A { b { ...G } } fragment G on B { c { ...F } }";

        assert_eq!(refusal(cycle), None);
    }
}
