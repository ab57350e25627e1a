//! The catalog's side of the order saga: reserving an order's stock, all or none, and releasing it.
//!
//! Two ways in, one set of rules: the [`saga`] consumer reads `shop.orders.v1` and reserves or releases inside the
//! transaction that also stores its offsets; `ReserveStock` and `ReleaseStock` over gRPC do the same in a transaction
//! of their own ([`CatalogService`](crate::service::CatalogService)). Either way the decision, the products' new
//! stock and their events (`shop.stock.*.v1`, `shop.product.updated.v1`) commit together.
//!
//! - [`reservations`]: [`reserve`](reservations::reserve) and [`release`](reservations::release), inside a
//!   caller's transaction, with the locking rules that make them safe under concurrency and redelivery.
//! - [`repository`]: the SQL of the reservations tables.
//! - [`saga`]: the consumer of order events (`catalog.stock-reservations`).

pub mod repository;
pub mod reservations;
pub mod saga;

pub use self::saga::StockSaga;
