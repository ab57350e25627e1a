//! A typed client for `shop.catalog.v1.CatalogService`: plain arguments in, protobuf messages out.

use shop_proto::catalog::v1::{self as proto, catalog_service_client::CatalogServiceClient};
use tonic::{Status, transport::Channel};

/// Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    inner: CatalogServiceClient<Channel>,
}

impl CatalogClient {
    /// Connects to the service at `url` (`http://host:port`).
    pub async fn connect(url: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let inner = CatalogServiceClient::connect(url.into()).await?;
        Ok(Self { inner: shop_platform::limit_message_sizes!(inner) })
    }

    pub async fn post_product(
        &self,
        name: &str,
        description: &str,
        price_cents: i64,
    ) -> Result<proto::Product, Status> {
        let request = proto::PostProductRequest {
            name: name.to_owned(),
            description: description.to_owned(),
            price_cents,
            stock: None,
        };
        let response = self.inner.clone().post_product(request).await?.into_inner();
        response.product.ok_or_else(|| Status::internal("the response carries no product"))
    }

    /// Posts a product that tracks its stock, starting with `stock` units.
    pub async fn post_product_with_stock(
        &self,
        name: &str,
        description: &str,
        price_cents: i64,
        stock: i64,
    ) -> Result<proto::Product, Status> {
        let request = proto::PostProductRequest {
            name: name.to_owned(),
            description: description.to_owned(),
            price_cents,
            stock: Some(stock),
        };
        let response = self.inner.clone().post_product(request).await?.into_inner();
        response.product.ok_or_else(|| Status::internal("the response carries no product"))
    }

    pub async fn update_product(
        &self,
        request: proto::UpdateProductRequest,
    ) -> Result<proto::Product, Status> {
        let response = self.inner.clone().update_product(request).await?.into_inner();
        response.product.ok_or_else(|| Status::internal("the response carries no product"))
    }

    pub async fn get_product(&self, id: &str) -> Result<proto::Product, Status> {
        let request = proto::GetProductRequest { id: id.to_owned() };
        let response = self.inner.clone().get_product(request).await?.into_inner();
        response.product.ok_or_else(|| Status::internal("the response carries no product"))
    }

    pub async fn get_products(
        &self,
        request: proto::GetProductsRequest,
    ) -> Result<Vec<proto::Product>, Status> {
        Ok(self.inner.clone().get_products(request).await?.into_inner().products)
    }

    /// Adds `delta` units to the product's stock (takes them away when negative), only from `expected_version`
    /// when given.
    pub async fn adjust_stock(
        &self,
        id: &str,
        delta: i64,
        expected_version: Option<i64>,
    ) -> Result<proto::Product, Status> {
        let request = proto::AdjustStockRequest { id: id.to_owned(), delta, expected_version };
        let response = self.inner.clone().adjust_stock(request).await?.into_inner();
        response.product.ok_or_else(|| Status::internal("the response carries no product"))
    }

    /// Reserves `lines` (product id, quantity) for order `order_id`, all or none; the order id is the idempotency
    /// key.
    pub async fn reserve_stock(
        &self,
        order_id: &str,
        lines: &[(&str, u32)],
    ) -> Result<proto::StockReservation, Status> {
        let lines = lines
            .iter()
            .map(|(product_id, quantity)| proto::StockLine {
                product_id: (*product_id).to_owned(),
                quantity: *quantity,
            })
            .collect();
        let request = proto::ReserveStockRequest { order_id: order_id.to_owned(), lines };
        let response = self.inner.clone().reserve_stock(request).await?.into_inner();
        response.reservation.ok_or_else(|| Status::internal("the response carries no reservation"))
    }

    /// Releases what is held for order `order_id`.
    pub async fn release_stock(&self, order_id: &str) -> Result<proto::StockReservation, Status> {
        let request = proto::ReleaseStockRequest { order_id: order_id.to_owned() };
        let response = self.inner.clone().release_stock(request).await?.into_inner();
        response.reservation.ok_or_else(|| Status::internal("the response carries no reservation"))
    }

    /// The generated client, for calls that need request metadata.
    pub fn raw(&self) -> CatalogServiceClient<Channel> {
        self.inner.clone()
    }
}
