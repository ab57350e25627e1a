//! A typed client for `shop.order.v1.OrderService`: plain arguments in, protobuf messages out.

use shop_platform::identity::{Identity, attach_identity};
use shop_proto::order::v1::{self as proto, order_service_client::OrderServiceClient};
use tonic::{Request, Status, transport::Channel};

/// Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct OrderClient {
    inner: OrderServiceClient<Channel>,
}

impl OrderClient {
    /// Connects to the service at `url` (`http://host:port`).
    pub async fn connect(url: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let inner = OrderServiceClient::connect(url.into()).await?;
        Ok(Self { inner: shop_platform::limit_message_sizes!(inner) })
    }

    /// Places an order of `(product id, quantity)` lines.
    pub async fn post_order(&self, account_id: &str, lines: &[(&str, u32)]) -> Result<proto::Order, Status> {
        self.send_post_order(Request::new(post_order_request(account_id, lines))).await
    }

    /// Places an order as `identity`, as the gateway calls for an authenticated caller: a customer may name only
    /// their own account.
    pub async fn post_order_as(
        &self,
        identity: &Identity,
        account_id: &str,
        lines: &[(&str, u32)],
    ) -> Result<proto::Order, Status> {
        let mut request = Request::new(post_order_request(account_id, lines));
        attach_identity(&mut request, identity)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        self.send_post_order(request).await
    }

    async fn send_post_order(
        &self,
        request: Request<proto::PostOrderRequest>,
    ) -> Result<proto::Order, Status> {
        let response = self.inner.clone().post_order(request).await?.into_inner();
        response.order.ok_or_else(|| Status::internal("the response carries no order"))
    }

    pub async fn get_order(&self, id: &str) -> Result<proto::Order, Status> {
        let request = proto::GetOrderRequest { id: id.to_owned() };
        let response = self.inner.clone().get_order(request).await?.into_inner();
        response.order.ok_or_else(|| Status::internal("the response carries no order"))
    }

    pub async fn get_orders_for_account(&self, account_id: &str) -> Result<Vec<proto::Order>, Status> {
        let request =
            proto::GetOrdersForAccountRequest { account_id: account_id.to_owned(), ..Default::default() };
        Ok(self.inner.clone().get_orders_for_account(request).await?.into_inner().orders)
    }

    pub async fn get_orders_for_accounts(&self, account_ids: &[&str]) -> Result<Vec<proto::Order>, Status> {
        let request = proto::GetOrdersForAccountsRequest {
            account_ids: account_ids.iter().map(|id| (*id).to_owned()).collect(),
            ..Default::default()
        };
        Ok(self.inner.clone().get_orders_for_accounts(request).await?.into_inner().orders)
    }

    /// Cancels an order that is not final yet; as `identity` when given (a customer may cancel only the orders of
    /// their own account), else unrestricted.
    pub async fn cancel_order(&self, id: &str, identity: Option<&Identity>) -> Result<proto::Order, Status> {
        let mut request = Request::new(proto::CancelOrderRequest { id: id.to_owned() });
        if let Some(identity) = identity {
            attach_identity(&mut request, identity)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
        }
        let response = self.inner.clone().cancel_order(request).await?.into_inner();
        response.order.ok_or_else(|| Status::internal("the response carries no order"))
    }

    /// The generated client, for calls that need request metadata.
    pub fn raw(&self) -> OrderServiceClient<Channel> {
        self.inner.clone()
    }
}

fn post_order_request(account_id: &str, lines: &[(&str, u32)]) -> proto::PostOrderRequest {
    proto::PostOrderRequest {
        account_id: account_id.to_owned(),
        lines: lines
            .iter()
            .map(|(product_id, quantity)| proto::LineItem {
                product_id: (*product_id).to_owned(),
                quantity: *quantity,
            })
            .collect(),
        ..Default::default()
    }
}
