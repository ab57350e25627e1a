//! The catalog service through its real gRPC server, on port 0, against a fresh database per test.

mod elasticsearch;
mod get_products;
mod helpers;
mod infrastructure;
mod post_product;
mod reservations;
mod saga_consumer;
mod saga_properties;
mod stock;
mod update_product;
