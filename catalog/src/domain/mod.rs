//! Products, their stock and the reservations orders make of it, with their rules. No I/O here: everything is
//! unit-tested in place.

mod product;
mod product_details;
mod reservation;
mod stock;

pub use product::{Product, ProductChange};
pub use product_details::{Price, ProductDetails};
pub use reservation::{Decision, Release, Reservation, ReservationStatus, Shortage, StockLine, StockRequest};
pub use stock::{Stock, StockDelta, StockRefusal};
