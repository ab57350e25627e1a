//! `shop.catalog.v1.CatalogService` over [`CatalogService`]: protobuf in, domain types through, protobuf out.

use shop_platform::{
    FieldViolation, ServiceError,
    grpc::trace_context,
    ids::{parse_id, parse_ids, to_timestamp},
    pagination::Page,
};
use shop_proto::catalog::v1::{
    self as proto,
    catalog_service_server::{self, CatalogServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{Product, ProductDetails, Reservation, ReservationStatus, Stock, StockDelta, StockRequest},
    service::{CatalogService, MAX_IDS_PER_CALL, ProductQuery},
};

/// The longest search query accepted, in characters.
const MAX_QUERY_CHARS: usize = 500;

/// The tonic service implementation.
#[derive(Debug, Clone)]
pub struct CatalogGrpc {
    service: CatalogService,
}

impl CatalogGrpc {
    /// The server, ready to add to a tonic router.
    pub fn server(service: CatalogService) -> CatalogServiceServer<Self> {
        shop_platform::limit_message_sizes!(CatalogServiceServer::new(Self { service }))
    }
}

impl From<Product> for proto::Product {
    fn from(product: Product) -> Self {
        Self {
            id: product.id.to_string(),
            name: product.details.name().to_owned(),
            description: product.details.description().to_owned(),
            price_cents: product.details.price().cents(),
            version: product.version,
            created_at: Some(to_timestamp(product.created_at)),
            updated_at: Some(to_timestamp(product.updated_at)),
            stock: product.stock.map(Stock::available),
        }
    }
}

impl From<Reservation> for proto::StockReservation {
    fn from(reservation: Reservation) -> Self {
        let status = match reservation.status {
            ReservationStatus::Reserved => proto::ReservationStatus::Reserved,
            ReservationStatus::Rejected => proto::ReservationStatus::Rejected,
            ReservationStatus::Released => proto::ReservationStatus::Released,
        };
        Self {
            order_id: reservation.order_id.to_string(),
            status: status.into(),
            lines: reservation
                .lines
                .into_iter()
                .map(|line| proto::StockLine {
                    product_id: line.product_id.to_string(),
                    quantity: line.quantity,
                })
                .collect(),
            shortages: reservation
                .shortages
                .into_iter()
                .map(|shortage| proto::StockShortage {
                    product_id: shortage.product_id.to_string(),
                    requested: shortage.requested,
                    available: shortage.available,
                })
                .collect(),
            version: reservation.version,
        }
    }
}

/// Both parsed, or every violation of either.
fn both<A, B>(
    a: Result<A, Vec<FieldViolation>>,
    b: Result<B, Vec<FieldViolation>>,
) -> Result<(A, B), ServiceError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(ServiceError::Invalid(a.err().into_iter().chain(b.err()).flatten().collect())),
    }
}

impl TryFrom<proto::GetProductsRequest> for ProductQuery {
    type Error = ServiceError;

    fn try_from(request: proto::GetProductsRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let ids = parse_ids("ids", &request.ids, MAX_IDS_PER_CALL)
            .map_err(|problems| violations.extend(problems))
            .unwrap_or_default();
        let text = Some(request.query.trim()).filter(|text| !text.is_empty()).map(str::to_owned);
        // Both checks are on the text as sent, spaces included, so that the REST document can state them exactly.
        if request.query.chars().count() > MAX_QUERY_CHARS {
            violations
                .push(FieldViolation::new("query", format!("must be at most {MAX_QUERY_CHARS} characters")));
        } else if request.query.chars().any(char::is_control) {
            // Postgres refuses a NUL in text outright (an error, not an empty result), and no product name holds a
            // control character to match: refused here, as names are, rather than failing as INTERNAL.
            violations.push(FieldViolation::new("query", "must not contain control characters"));
        }
        // A batch by id returns every id asked for unless the caller pages explicitly.
        let page = if !ids.is_empty() && request.skip == 0 && request.take == 0 {
            None
        } else {
            Page::parse_after(request.skip, request.take, &request.after)
                .map_err(|problems| violations.extend(problems))
                .ok()
        };
        if text.is_some() && !request.after.trim().is_empty() {
            // A search is ordered by relevance, not by id: there is no "after" in it.
            violations
                .push(FieldViolation::new("after", "cannot be used with `query`; page a search with `skip`"));
        }
        if !violations.is_empty() {
            return Err(ServiceError::Invalid(violations));
        }
        Ok(Self { ids: (!request.ids.is_empty()).then_some(ids), text, page })
    }
}

#[tonic::async_trait]
impl catalog_service_server::CatalogService for CatalogGrpc {
    async fn post_product(
        &self,
        request: Request<proto::PostProductRequest>,
    ) -> Result<Response<proto::PostProductResponse>, Status> {
        let trace = trace_context(&request);
        let request = request.into_inner();
        let details = ProductDetails::parse(&request.name, &request.description, request.price_cents);
        let stock = request.stock.map(|units| Stock::parse("stock", units)).transpose().map_err(|v| vec![v]);
        let (details, stock) = both(details, stock)?;
        let product = self.service.create_product(details, stock, &trace).await?;
        Ok(Response::new(proto::PostProductResponse { product: Some(product.into()) }))
    }

    async fn update_product(
        &self,
        request: Request<proto::UpdateProductRequest>,
    ) -> Result<Response<proto::UpdateProductResponse>, Status> {
        let trace = trace_context(&request);
        let request = request.into_inner();
        let id = parse_id("id", &request.id);
        let details = ProductDetails::parse(&request.name, &request.description, request.price_cents);
        let (id, details) = match (id, details) {
            (Ok(id), Ok(details)) => (id, details),
            (id, details) => {
                let violations = id.err().into_iter().chain(details.err().into_iter().flatten()).collect();
                return Err(ServiceError::Invalid(violations).into());
            }
        };
        let product = self.service.update_product(id, details, request.expected_version, &trace).await?;
        Ok(Response::new(proto::UpdateProductResponse { product: Some(product.into()) }))
    }

    async fn get_product(
        &self,
        request: Request<proto::GetProductRequest>,
    ) -> Result<Response<proto::GetProductResponse>, Status> {
        let id = parse_id("id", &request.get_ref().id).map_err(ServiceError::from)?;
        let product = self.service.product(id).await?;
        Ok(Response::new(proto::GetProductResponse { product: Some(product.into()) }))
    }

    async fn get_products(
        &self,
        request: Request<proto::GetProductsRequest>,
    ) -> Result<Response<proto::GetProductsResponse>, Status> {
        let query = ProductQuery::try_from(request.into_inner())?;
        let products = self.service.products(query).await?;
        Ok(Response::new(proto::GetProductsResponse {
            products: products.into_iter().map(Into::into).collect(),
        }))
    }

    async fn adjust_stock(
        &self,
        request: Request<proto::AdjustStockRequest>,
    ) -> Result<Response<proto::AdjustStockResponse>, Status> {
        let trace = trace_context(&request);
        let request = request.into_inner();
        let (id, delta) = both(
            parse_id("id", &request.id).map_err(|v| vec![v]),
            StockDelta::parse("delta", request.delta).map_err(|v| vec![v]),
        )?;
        let product = self.service.adjust_stock(id, delta, request.expected_version, &trace).await?;
        Ok(Response::new(proto::AdjustStockResponse { product: Some(product.into()) }))
    }

    async fn reserve_stock(
        &self,
        request: Request<proto::ReserveStockRequest>,
    ) -> Result<Response<proto::ReserveStockResponse>, Status> {
        let trace = trace_context(&request);
        let request = request.into_inner();
        let (order_id, stock_request) = both(
            parse_id("order_id", &request.order_id).map_err(|v| vec![v]),
            StockRequest::parse(request.lines.iter().map(|line| (line.product_id.as_str(), line.quantity))),
        )?;
        let reservation = self.service.reserve_stock(order_id, &stock_request, &trace).await?;
        Ok(Response::new(proto::ReserveStockResponse { reservation: Some(reservation.into()) }))
    }

    async fn release_stock(
        &self,
        request: Request<proto::ReleaseStockRequest>,
    ) -> Result<Response<proto::ReleaseStockResponse>, Status> {
        let trace = trace_context(&request);
        let order_id = parse_id("order_id", &request.get_ref().order_id).map_err(ServiceError::from)?;
        let reservation = self.service.release_stock(order_id, &trace).await?;
        Ok(Response::new(proto::ReleaseStockResponse { reservation: Some(reservation.into()) }))
    }
}
