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

    /// The generated client, for calls that need request metadata.
    pub fn raw(&self) -> CatalogServiceClient<Channel> {
        self.inner.clone()
    }
}
