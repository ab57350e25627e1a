//! The gRPC clients of the three services, and the single translation of a `tonic::Status` into a GraphQL error.

use async_graphql::ErrorExtensions;
use shop_events::TraceContext;
use shop_platform::grpc::{lazy_channel, traced_request};
use shop_proto::{
    account::v1::account_service_client::AccountServiceClient,
    catalog::v1::catalog_service_client::CatalogServiceClient,
    order::v1::order_service_client::OrderServiceClient,
};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::{config::Settings, schema::errors::ErrorCode};

/// The services behind the gateway. Channels connect lazily: the gateway starts, and answers UNAVAILABLE for the
/// fields that need them, while a service is down.
#[derive(Debug, Clone)]
pub struct Services {
    pub accounts: AccountServiceClient<Channel>,
    pub catalog: CatalogServiceClient<Channel>,
    pub orders: OrderServiceClient<Channel>,
    /// Each service's name, gRPC service name and health client, for the readiness check.
    pub health: [(&'static str, &'static str, HealthClient<Channel>); 3],
}

impl Services {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let accounts = lazy_channel(&settings.service(&settings.account_service_url))?;
        let catalog = lazy_channel(&settings.service(&settings.catalog_service_url))?;
        let orders = lazy_channel(&settings.service(&settings.order_service_url))?;
        Ok(Self {
            health: [
                ("account", "shop.account.v1.AccountService", HealthClient::new(accounts.clone())),
                ("catalog", "shop.catalog.v1.CatalogService", HealthClient::new(catalog.clone())),
                ("order", "shop.order.v1.OrderService", HealthClient::new(orders.clone())),
            ],
            accounts: AccountServiceClient::new(accounts),
            catalog: CatalogServiceClient::new(catalog),
            orders: OrderServiceClient::new(orders),
        })
    }
}

/// Wraps a gRPC request message with the GraphQL request's trace context.
pub fn request<T>(message: T, trace: &TraceContext) -> Request<T> {
    traced_request(message, trace)
}

/// A failed call to `service`, as GraphQL clients see it: the service's own message for errors about the input
/// (its messages are written for callers), a generic one otherwise; the details go to the log.
pub fn graphql_error(service: &str, status: Status) -> async_graphql::Error {
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => {
            let details = status.get_error_details();
            let fields: Vec<async_graphql::Value> = details
                .bad_request()
                .map(|bad_request| {
                    bad_request
                        .field_violations
                        .iter()
                        .map(|v| {
                            async_graphql::Value::from_json(serde_json::json!({
                                "field": v.field,
                                "description": v.description,
                            }))
                            .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            ErrorCode::BadUserInput.error(status.message()).extend_with(|_, e| {
                if !fields.is_empty() {
                    e.set("fields", fields.clone());
                }
            })
        }
        Code::NotFound => ErrorCode::NotFound.error(status.message()),
        Code::Aborted | Code::AlreadyExists | Code::FailedPrecondition => {
            ErrorCode::Conflict.error(status.message())
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            tracing::warn!(service, code = ?status.code(), error.message = status.message(), "A service is unavailable.");
            ErrorCode::Unavailable.error(format!("the {service} service is unavailable; retry later"))
        }
        code => {
            tracing::error!(
                service,
                ?code,
                error.message = status.message(),
                "A service call failed unexpectedly."
            );
            ErrorCode::Internal.error("internal error")
        }
    }
}
