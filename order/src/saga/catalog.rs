//! The catalog's stock over gRPC, for `grpc` mode: `ReserveStock` and `ReleaseStock`, with the order id as
//! idempotency key, so that a call repeated after a lost answer is answered with the same reservation.

use shop_events::TraceContext;
use shop_platform::{
    ServiceError,
    grpc::{TracedChannel, traced_request},
};
use shop_proto::catalog::v1::{
    self as proto, ReleaseStockRequest, ReserveStockRequest, StockLine,
    catalog_service_client::CatalogServiceClient,
};
use uuid::Uuid;

use super::StockAnswer;
use crate::{
    directory::dependency_error,
    domain::{Order, Shortage},
};

/// The catalog service's stock operations.
#[derive(Debug, Clone)]
pub struct CatalogStock {
    catalog: CatalogServiceClient<TracedChannel>,
}

impl CatalogStock {
    pub fn new(catalog: TracedChannel) -> Self {
        Self { catalog: shop_platform::limit_message_sizes!(CatalogServiceClient::new(catalog)) }
    }

    /// Asks the catalog to hold every line of `order`, or none.
    pub async fn reserve(&self, order: &Order, trace: &TraceContext) -> Result<StockAnswer, ServiceError> {
        let request = ReserveStockRequest {
            order_id: order.id.to_string(),
            lines: order
                .lines
                .iter()
                .map(|line| StockLine { product_id: line.product_id.to_string(), quantity: line.quantity })
                .collect(),
        };
        let reservation = self
            .catalog
            .clone()
            .reserve_stock(traced_request(request, trace))
            .await
            .map_err(|status| dependency_error("catalog", status))?
            .into_inner()
            .reservation;
        answer(reservation)
    }

    /// Asks the catalog to release whatever it holds for `order_id` (idempotent).
    pub async fn release(&self, order_id: Uuid, trace: &TraceContext) -> Result<StockAnswer, ServiceError> {
        let request = ReleaseStockRequest { order_id: order_id.to_string() };
        let reservation = self
            .catalog
            .clone()
            .release_stock(traced_request(request, trace))
            .await
            .map_err(|status| dependency_error("catalog", status))?
            .into_inner()
            .reservation;
        answer(reservation)
    }
}

/// The catalog's reservation as an answer to the order.
fn answer(reservation: Option<proto::StockReservation>) -> Result<StockAnswer, ServiceError> {
    let unexpected = |what: String| ServiceError::Unexpected(anyhow::anyhow!("The catalog answered {what}"));
    let reservation = reservation.ok_or_else(|| unexpected("no reservation".into()))?;
    match reservation.status() {
        proto::ReservationStatus::Reserved => Ok(StockAnswer::Reserved),
        proto::ReservationStatus::Released => Ok(StockAnswer::Released),
        proto::ReservationStatus::Rejected => reservation
            .shortages
            .iter()
            .map(|shortage| {
                let product_id = shortage
                    .product_id
                    .parse()
                    .map_err(|_| unexpected(format!("a malformed product id {:?}", shortage.product_id)))?;
                Ok(Shortage { product_id, requested: shortage.requested, available: shortage.available })
            })
            .collect::<Result<_, _>>()
            .map(StockAnswer::Rejected),
        proto::ReservationStatus::Unspecified => Err(unexpected("a reservation without a status".into())),
    }
}
