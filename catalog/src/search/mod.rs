//! Product search. Two backends:
//! - `postgres` (the default): full-text search on the products table itself (a weighted, generated `tsvector`
//!   with a GIN index), always as fresh as the table.
//! - `elasticsearch`: a read model in Elasticsearch, fed from `shop.products.v1` by the consumer toolkit
//!   ([`SearchIndexProjection`]), searched with `multi_match`, rebuildable by replay. Searches return ids; the
//!   products themselves are always read from Postgres, the system of record.

use shop_platform::redact::SensitiveUrl;

pub mod documents;
pub mod elasticsearch;
mod projection;

pub use self::{elasticsearch::ProductIndex, projection::SearchIndexProjection};

/// Which search backend answers `GetProducts` queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchBackend {
    /// Postgres full-text search over the products table.
    Postgres,
    /// An Elasticsearch index fed from product events.
    Elasticsearch,
}

const DEFAULT_ELASTICSEARCH_URL: &str = "http://127.0.0.1:9200";
const DEFAULT_ELASTICSEARCH_INDEX: &str = "shop-products";

/// Search settings, flattened into the catalog's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchSettings {
    /// The search backend.
    #[arg(long, env = "CATALOG_SEARCH", value_enum, default_value_t = SearchBackend::Postgres)]
    pub search_backend: SearchBackend,
    /// Elasticsearch (elasticsearch backend).
    #[arg(long, env = "ELASTICSEARCH_URL", default_value = DEFAULT_ELASTICSEARCH_URL, hide_env_values = true)]
    pub elasticsearch_url: SensitiveUrl,
    /// The alias the product index is reached through (elasticsearch backend).
    #[arg(long, env = "ELASTICSEARCH_INDEX", default_value = DEFAULT_ELASTICSEARCH_INDEX)]
    pub elasticsearch_index: String,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            search_backend: SearchBackend::Postgres,
            elasticsearch_url: DEFAULT_ELASTICSEARCH_URL.into(),
            elasticsearch_index: DEFAULT_ELASTICSEARCH_INDEX.into(),
        }
    }
}
