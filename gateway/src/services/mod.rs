//! The services behind the gateway, and the one layer every face of the gateway calls them through: typed
//! methods that apply the access rules of [`call`] to the caller, build the request (with the caller's trace and
//! identity), make the call, and turn a failure into a [`CallError`] — "not found" becoming `None` where a look-up
//! may find nothing.

mod call;
mod error;

use std::sync::Arc;

use shop_platform::grpc::{TracedChannel, lazy_channel};
use shop_proto::{
    account::v1::{
        self as account, GetAccountRequest, GetAccountsRequest, PostAccountRequest,
        account_service_client::AccountServiceClient,
    },
    catalog::v1::{
        self as catalog, AdjustStockRequest, GetProductRequest, GetProductsRequest, PostProductRequest,
        UpdateProductRequest, catalog_service_client::CatalogServiceClient,
    },
    order::v1::{
        self as order, CancelOrderRequest, GetOrderRequest, GetOrdersForAccountsRequest, LineItem,
        PostOrderRequest, order_service_client::OrderServiceClient,
    },
};
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub use self::{call::Call, error::CallError};
use crate::config::Settings;

const ACCOUNT: &str = "account";
const CATALOG: &str = "catalog";
const ORDER: &str = "order";

/// The most accounts one identity's look-up reads: an identity owns one (the account service enforces it).
const MAX_OWNED_ACCOUNTS: u32 = 10;

/// A page of a list: how many to skip, how many to take, and after which item (an id), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Page {
    pub skip: u64,
    pub take: u32,
    pub after: Option<String>,
}

/// A product's fields as a caller gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    pub name: String,
    pub description: String,
    pub price_cents: i64,
}

/// How a service answered its health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceHealth {
    Serving,
    NotServing,
    Unreachable,
}

/// The services behind the gateway. Channels connect lazily: the gateway starts, and answers UNAVAILABLE for what
/// needs them, while a service is down. Cloning is one reference count: every HTTP request clones the state
/// holding this, and each client's buffered channel costs atomic updates to clone and to drop.
#[derive(Debug, Clone)]
pub struct Services {
    clients: Arc<Clients>,
}

/// One client per service, each cloned for the duration of a call, as tonic's clients are.
#[derive(Debug)]
struct Clients {
    accounts: AccountServiceClient<TracedChannel>,
    catalog: CatalogServiceClient<TracedChannel>,
    orders: OrderServiceClient<TracedChannel>,
    /// Each service's name, gRPC service name and health client, for the readiness check.
    health: [(&'static str, &'static str, HealthClient<TracedChannel>); 3],
}

impl Services {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let accounts = lazy_channel(&settings.service(&settings.account_service_url))?;
        let catalog = lazy_channel(&settings.service(&settings.catalog_service_url))?;
        let orders = lazy_channel(&settings.service(&settings.order_service_url))?;
        let clients = Clients {
            health: [
                (ACCOUNT, "shop.account.v1.AccountService", HealthClient::new(accounts.clone())),
                (CATALOG, "shop.catalog.v1.CatalogService", HealthClient::new(catalog.clone())),
                (ORDER, "shop.order.v1.OrderService", HealthClient::new(orders.clone())),
            ],
            accounts: shop_platform::limit_message_sizes!(AccountServiceClient::new(accounts)),
            catalog: shop_platform::limit_message_sizes!(CatalogServiceClient::new(catalog)),
            orders: shop_platform::limit_message_sizes!(OrderServiceClient::new(orders)),
        };
        Ok(Self { clients: Arc::new(clients) })
    }

    /// The account with `id`, if there is one the caller may see.
    pub async fn account(&self, id: &str, call: &Call) -> Result<Option<account::Account>, CallError> {
        let customer = call.customer()?;
        let request = call.request(GetAccountRequest { id: id.to_owned() })?;
        let response = self.clients.accounts.clone().get_account(request).await;
        let account = found(ACCOUNT, response)?.and_then(|r| r.account);
        Ok(account
            .filter(|account| customer.is_none_or(|customer| customer.may_act_for(account.owner.as_deref()))))
    }

    /// A page of the accounts the caller may see, oldest first: all of them, or a customer's own.
    pub async fn accounts(&self, page: Page, call: &Call) -> Result<Vec<account::Account>, CallError> {
        let owner = call.customer()?.map(|customer| customer.subject.clone()).unwrap_or_default();
        let message = GetAccountsRequest {
            skip: page.skip,
            take: page.take,
            after: page.after.unwrap_or_default(),
            owner,
        };
        let response = self.clients.accounts.clone().get_accounts(call.request(message)?).await;
        Ok(answered(ACCOUNT, response)?.accounts)
    }

    /// Whether the caller may act for the account `account_id`: always for staff (and with authentication
    /// disabled), for a customer only if it owns the account (looked up once per request).
    async fn may_act_for(&self, account_id: &str, call: &Call) -> Result<bool, CallError> {
        if call.customer()?.is_none() {
            return Ok(true);
        }
        let owned = call
            .owned_accounts(|| async {
                // A customer's list of accounts is its own (see `accounts`).
                let page = Page { take: MAX_OWNED_ACCOUNTS, ..Page::default() };
                Ok(self.accounts(page, call).await?.into_iter().map(|account| account.id).collect())
            })
            .await?;
        Ok(owned.iter().any(|owned| owned == account_id))
    }

    /// Opens an account, owned by the caller when it is signed in (one per identity).
    pub async fn create_account(&self, name: String, call: &Call) -> Result<account::Account, CallError> {
        call.signed_in()?;
        let request = call.request(PostAccountRequest { name })?;
        let response = self.clients.accounts.clone().post_account(request).await;
        answered(ACCOUNT, response)?
            .account
            .ok_or_else(|| CallError::malformed(ACCOUNT, "the created account"))
    }

    /// The product with `id`, if there is one.
    pub async fn product(&self, id: &str, call: &Call) -> Result<Option<catalog::Product>, CallError> {
        let request = call.request(GetProductRequest { id: id.to_owned() })?;
        let response = self.clients.catalog.clone().get_product(request).await;
        found(CATALOG, response).map(|response| response.and_then(|r| r.product))
    }

    /// A page of products: all of them (oldest first), or those matching a full-text `query` (best first).
    pub async fn products(
        &self,
        page: Page,
        query: Option<String>,
        call: &Call,
    ) -> Result<Vec<catalog::Product>, CallError> {
        let message = GetProductsRequest {
            skip: page.skip,
            take: page.take,
            after: page.after.unwrap_or_default(),
            query: query.unwrap_or_default(),
            ids: Vec::new(),
        };
        let response = self.clients.catalog.clone().get_products(call.request(message)?).await;
        Ok(answered(CATALOG, response)?.products)
    }

    /// Adds a product to the catalog (staff only). With `stock` (zero or more units), the product tracks its stock
    /// for good; without, it never does (unlimited).
    pub async fn create_product(
        &self,
        fields: ProductFields,
        stock: Option<i64>,
        call: &Call,
    ) -> Result<catalog::Product, CallError> {
        call.require_staff()?;
        let message = PostProductRequest {
            name: fields.name,
            description: fields.description,
            price_cents: fields.price_cents,
            stock,
        };
        let response = self.clients.catalog.clone().post_product(call.request(message)?).await;
        answered(CATALOG, response)?
            .product
            .ok_or_else(|| CallError::malformed(CATALOG, "the created product"))
    }

    /// Replaces a product's fields (staff only); with `expected_version`, only if it is still at that version.
    pub async fn update_product(
        &self,
        id: &str,
        fields: ProductFields,
        expected_version: Option<i64>,
        call: &Call,
    ) -> Result<catalog::Product, CallError> {
        call.require_staff()?;
        let message = UpdateProductRequest {
            id: id.to_owned(),
            name: fields.name,
            description: fields.description,
            price_cents: fields.price_cents,
            expected_version,
        };
        let response = self.clients.catalog.clone().update_product(call.request(message)?).await;
        answered(CATALOG, response)?
            .product
            .ok_or_else(|| CallError::malformed(CATALOG, "the updated product"))
    }

    /// Adds `delta` units to a product's stock, or takes them away when negative (staff only); with
    /// `expected_version`, only if the product is still at that version. A product that does not track its stock,
    /// or stock that would fall below zero, is a conflict with its state, as a stale version is.
    pub async fn adjust_stock(
        &self,
        id: &str,
        delta: i64,
        expected_version: Option<i64>,
        call: &Call,
    ) -> Result<catalog::Product, CallError> {
        call.require_staff()?;
        let message = AdjustStockRequest { id: id.to_owned(), delta, expected_version };
        let response = self.clients.catalog.clone().adjust_stock(call.request(message)?).await;
        answered(CATALOG, response)?
            .product
            .ok_or_else(|| CallError::malformed(CATALOG, "the adjusted product"))
    }

    /// The order with `id`, if there is one the caller may see.
    pub async fn order(&self, id: &str, call: &Call) -> Result<Option<order::Order>, CallError> {
        call.signed_in()?;
        let request = call.request(GetOrderRequest { id: id.to_owned() })?;
        let response = self.clients.orders.clone().get_order(request).await;
        let Some(order) = found(ORDER, response)?.and_then(|r| r.order) else {
            return Ok(None);
        };
        Ok(self.may_act_for(&order.account_id, call).await?.then_some(order))
    }

    /// Cancels the order with `id` unless it is final already (a conflict then), and answers it cancelled; `None`
    /// when there is no order the caller may see. The order service refuses a customer another's order too; asking
    /// first keeps the rule the gateway's own, so that another's order answers what a missing one does whatever
    /// state it is in (a final one must not tell itself apart by refusing as final).
    pub async fn cancel_order(&self, id: &str, call: &Call) -> Result<Option<order::Order>, CallError> {
        if call.customer()?.is_some() && self.order(id, call).await?.is_none() {
            return Ok(None);
        }
        let request = call.request(CancelOrderRequest { id: id.to_owned() })?;
        let response = self.clients.orders.clone().cancel_order(request).await;
        found(ORDER, response)?
            .map(|response| response.order.ok_or_else(|| CallError::malformed(ORDER, "the cancelled order")))
            .transpose()
    }

    /// The same page of each given account's orders, newest first, in one call; nothing for an account the caller
    /// may not see.
    pub async fn orders_for_accounts(
        &self,
        mut account_ids: Vec<String>,
        page: Page,
        call: &Call,
    ) -> Result<Vec<order::Order>, CallError> {
        if call.customer()?.is_some() {
            let mut allowed = Vec::with_capacity(account_ids.len());
            for account_id in account_ids {
                if self.may_act_for(&account_id, call).await? {
                    allowed.push(account_id);
                }
            }
            account_ids = allowed;
        }
        if account_ids.is_empty() {
            return Ok(Vec::new());
        }
        let message = GetOrdersForAccountsRequest {
            account_ids,
            skip: page.skip,
            take: page.take,
            after: page.after.unwrap_or_default(),
        };
        let response = self.clients.orders.clone().get_orders_for_accounts(call.request(message)?).await;
        Ok(answered(ORDER, response)?.orders)
    }

    /// Places an order of `lines` (product id, quantity) for `account_id`. A customer may only order for its own
    /// account; any other answers as an account that does not exist would in the order service's synchronous mode.
    /// With an `idempotency_key`, a retry of the same request answers the order its first attempt placed, and the
    /// key with another request is a conflict (see the order service's `PostOrder`).
    pub async fn place_order(
        &self,
        account_id: String,
        lines: Vec<(String, u32)>,
        idempotency_key: Option<String>,
        call: &Call,
    ) -> Result<order::Order, CallError> {
        if !self.may_act_for(&account_id, call).await? {
            return Err(CallError::NotFound(format!("account {account_id} does not exist")));
        }
        let lines =
            lines.into_iter().map(|(product_id, quantity)| LineItem { product_id, quantity }).collect();
        let idempotency_key = idempotency_key.unwrap_or_default();
        let request = call.request(PostOrderRequest { account_id, lines, idempotency_key })?;
        let response = self.clients.orders.clone().post_order(request).await;
        answered(ORDER, response)?.order.ok_or_else(|| CallError::malformed(ORDER, "the placed order"))
    }

    /// Each service's name and how it answers its gRPC health check, all asked at once.
    pub async fn health(&self) -> Vec<(&'static str, ServiceHealth)> {
        let checks = self.clients.health.iter().map(|(name, service, client)| {
            let mut client = client.clone();
            async move {
                let health = match client.check(HealthCheckRequest { service: (*service).to_owned() }).await {
                    Ok(response) if response.get_ref().status() == ServingStatus::Serving => {
                        ServiceHealth::Serving
                    }
                    Ok(_) => ServiceHealth::NotServing,
                    Err(_) => ServiceHealth::Unreachable,
                };
                (*name, health)
            }
        });
        futures::future::join_all(checks).await
    }
}

/// The response's message, or the call's failure as a [`CallError`].
fn answered<T>(service: &'static str, response: Result<tonic::Response<T>, Status>) -> Result<T, CallError> {
    response.map(tonic::Response::into_inner).map_err(|status| CallError::from_status(service, status))
}

/// Like [`answered`], with "not found" as `None`: a look-up that finds nothing is an answer, not an error.
fn found<T>(
    service: &'static str,
    response: Result<tonic::Response<T>, Status>,
) -> Result<Option<T>, CallError> {
    match response {
        Err(status) if status.code() == Code::NotFound => Ok(None),
        response => answered(service, response).map(Some),
    }
}
