//! Products and their rules. No I/O here: everything is unit-tested in place.

mod product;
mod product_details;

pub use product::{Product, ProductChange};
pub use product_details::{Price, ProductDetails};
