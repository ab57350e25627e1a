//! `shop.order.v1.OrderService` over [`OrderService`]: protobuf in, domain types through, protobuf out.

use std::time::Duration;

use prost::Message;
use shop_events::order::{OrderStep, OrderStepKind};
use shop_platform::{
    ServiceError,
    grpc::trace_context,
    identity::{Identity, identity_of},
    ids::{parse_id, parse_ids, to_timestamp},
    pagination::Page,
};
use shop_proto::order::v1::{
    self as proto,
    order_service_server::{self, OrderServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{
    directory::Directory,
    domain::{IdempotencyKey, NewOrder, Order, OrderStatus, PlacedBy},
    service::{MAX_ACCOUNTS_PER_CALL, OrderService},
};

/// The tonic service implementation.
#[derive(Debug, Clone)]
pub struct OrderGrpc<D> {
    service: OrderService<D>,
}

impl<D: Directory + Clone> OrderGrpc<D> {
    /// The server, ready to add to a tonic router.
    pub fn server(service: OrderService<D>) -> OrderServiceServer<Self> {
        shop_platform::limit_message_sizes!(OrderServiceServer::new(Self { service }))
    }
}

impl From<OrderStatus> for proto::OrderStatus {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => Self::Pending,
            OrderStatus::AwaitingStock => Self::AwaitingStock,
            OrderStatus::Confirmed => Self::Confirmed,
            OrderStatus::Rejected => Self::Rejected,
            OrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// One step of an order's saga, as the protocol carries it.
fn step_to_proto(step: OrderStep) -> proto::OrderStep {
    use proto::order_step::Kind;
    let kind = match step.step {
        OrderStepKind::Placed => Kind::Placed,
        OrderStepKind::AwaitingStock => Kind::AwaitingStock,
        OrderStepKind::StockReserved => Kind::StockReserved,
        OrderStepKind::StockRejected => Kind::StockRejected,
        OrderStepKind::Confirmed => Kind::Confirmed,
        OrderStepKind::Rejected => Kind::Rejected,
        OrderStepKind::Cancelled => Kind::Cancelled,
        OrderStepKind::StockReleased => Kind::StockReleased,
    };
    proto::OrderStep {
        kind: kind.into(),
        at: Some(to_timestamp(step.at)),
        detail: step.detail.unwrap_or_default(),
    }
}

impl From<Order> for proto::Order {
    fn from(order: Order) -> Self {
        Self {
            id: order.id.to_string(),
            account_id: order.account_id.to_string(),
            status: proto::OrderStatus::from(order.status).into(),
            lines: order
                .lines
                .into_iter()
                .map(|line| proto::OrderLine {
                    product_id: line.product_id.to_string(),
                    quantity: line.quantity,
                    product: line.product.map(|p| proto::PricedProduct {
                        name: p.name,
                        description: p.description,
                        unit_price_cents: p.unit_price_cents,
                    }),
                })
                .collect(),
            total_price_cents: order.total_price_cents,
            rejection_reason: order.rejection_reason.unwrap_or_default(),
            version: order.version,
            created_at: Some(to_timestamp(order.created_at)),
            updated_at: Some(to_timestamp(order.updated_at)),
            history: order.history.into_iter().map(step_to_proto).collect(),
            stock_release_pending: order.stock_release_pending,
        }
    }
}

/// Most bytes of orders one list response carries: below the 4 MiB every gRPC client accepts by default, so a
/// caller never meets a decode error it cannot act on. One order is at most about 2 MiB (100 lines with the
/// longest names and descriptions), so a list that fits at all always holds at least one.
const MAX_LIST_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// The orders in a list response, or RESOURCE_EXHAUSTED when they exceed [`MAX_LIST_RESPONSE_BYTES`].
fn orders_response<T>(
    orders: Vec<Order>,
    wrap: impl FnOnce(Vec<proto::Order>) -> T,
) -> Result<Response<T>, Status> {
    let orders: Vec<proto::Order> = orders.into_iter().map(Into::into).collect();
    let bytes: usize = orders.iter().map(|order| order.encoded_len() + 4).sum();
    if bytes > MAX_LIST_RESPONSE_BYTES {
        return Err(Status::resource_exhausted(format!(
            "the orders asked for take {bytes} bytes, more than the {MAX_LIST_RESPONSE_BYTES} one answer may \
             carry; ask for fewer accounts or a smaller page"
        )));
    }
    Ok(Response::new(wrap(orders)))
}

/// How long the caller gives the call, from its `grpc-timeout` header (`1500m`, `2S`, … as the gRPC protocol
/// writes it), if it sent one.
fn allowed_time<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    // At most 8 digits, says the protocol: no overflow below.
    let amount: u64 = amount.parse().ok().filter(|_| amount.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3_600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Who places (or cancels) an order, from the caller's identity: a customer may name only their own account;
/// staff, and a caller without an identity, any.
fn placed_by(identity: Option<Identity>) -> PlacedBy {
    match identity {
        Some(identity) if !identity.is_staff() => PlacedBy::Customer(identity.subject),
        _ => PlacedBy::Unrestricted,
    }
}

#[tonic::async_trait]
impl<D: Directory + Clone> order_service_server::OrderService for OrderGrpc<D> {
    async fn post_order(
        &self,
        request: Request<proto::PostOrderRequest>,
    ) -> Result<Response<proto::PostOrderResponse>, Status> {
        let (trace, allowed) = (trace_context(&request), allowed_time(&request));
        let placed_by = placed_by(identity_of(&request).map_err(ServiceError::from)?);
        let request = request.into_inner();
        let lines = request.lines.iter().map(|line| (line.product_id.as_str(), line.quantity));
        let new_order =
            NewOrder::parse(&request.account_id, lines).map_err(ServiceError::from)?.by(placed_by);
        let key = IdempotencyKey::parse(&request.idempotency_key).map_err(ServiceError::from)?;
        let order = self.service.place_order_within(new_order, key.as_ref(), &trace, allowed).await?;
        Ok(Response::new(proto::PostOrderResponse { order: Some(order.into()) }))
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::GetOrderResponse>, Status> {
        let id = parse_id("id", &request.get_ref().id).map_err(ServiceError::from)?;
        let order = self.service.order(id).await?;
        Ok(Response::new(proto::GetOrderResponse { order: Some(order.into()) }))
    }

    async fn get_orders_for_account(
        &self,
        request: Request<proto::GetOrdersForAccountRequest>,
    ) -> Result<Response<proto::GetOrdersForAccountResponse>, Status> {
        let request = request.into_inner();
        let account_id = parse_id("account_id", &request.account_id).map_err(ServiceError::from)?;
        let page =
            Page::parse_after(request.skip, request.take, &request.after).map_err(ServiceError::from)?;
        let orders = self.service.orders_for_accounts(&[account_id], page).await?;
        orders_response(orders, |orders| proto::GetOrdersForAccountResponse { orders })
    }

    async fn get_orders_for_accounts(
        &self,
        request: Request<proto::GetOrdersForAccountsRequest>,
    ) -> Result<Response<proto::GetOrdersForAccountsResponse>, Status> {
        // Counted before parsing: 4 MiB of empty ids would otherwise make two million violations.
        let ids = parse_ids("account_ids", &request.get_ref().account_ids, MAX_ACCOUNTS_PER_CALL)
            .map_err(ServiceError::from)?;
        let request = request.get_ref();
        let page =
            Page::parse_after(request.skip, request.take, &request.after).map_err(ServiceError::from)?;
        let orders = self.service.orders_for_accounts(&ids, page).await?;
        orders_response(orders, |orders| proto::GetOrdersForAccountsResponse { orders })
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::CancelOrderResponse>, Status> {
        let trace = trace_context(&request);
        let by = placed_by(identity_of(&request).map_err(ServiceError::from)?);
        let id = parse_id("id", &request.get_ref().id).map_err(ServiceError::from)?;
        let order = self.service.cancel_order(id, &by, &trace).await?;
        Ok(Response::new(proto::CancelOrderResponse { order: Some(order.into()) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request.metadata_mut().insert("grpc-timeout", value.parse().unwrap());
        request
    }

    #[test]
    fn the_time_a_caller_allows_is_read_from_its_grpc_timeout_in_every_unit() {
        assert_eq!(allowed_time(&with_timeout("1500m")), Some(Duration::from_millis(1_500)));
        assert_eq!(allowed_time(&with_timeout("2S")), Some(Duration::from_secs(2)));
        assert_eq!(allowed_time(&with_timeout("1H")), Some(Duration::from_secs(3_600)));
        assert_eq!(allowed_time(&with_timeout("250000u")), Some(Duration::from_millis(250)));
        assert_eq!(allowed_time(&Request::new(())), None);
        for malformed in ["", "S", "12", "1x", "123456789S", "-1S"] {
            assert_eq!(allowed_time(&with_timeout(malformed)), None, "{malformed:?}");
        }
    }
}
