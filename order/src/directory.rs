//! Looking up the accounts and products an order names. [`Directory`] is what validation needs; [`GrpcDirectory`]
//! asks the account and catalog services synchronously.

use std::{collections::HashMap, future::Future};

use chrono::{DateTime, Utc};
use shop_events::TraceContext;
use shop_platform::{
    ServiceError,
    grpc::{TracedChannel, traced_request},
};
use shop_proto::{
    account::v1::{GetAccountRequest, account_service_client::AccountServiceClient},
    catalog::v1::{GetProductsRequest, catalog_service_client::CatalogServiceClient},
};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::domain::{CatalogProduct, Order, PricedProduct};

/// An account, as much as order validation needs of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownAccount {
    /// The subject that owns it; `None` for an account opened without an identity.
    pub owner: Option<String>,
}

impl KnownAccount {
    /// Whether `order` may name this account: whoever placed the order may order for its owner.
    pub fn open_to(&self, order: &Order) -> bool {
        order.placed_by.may_order_for(self.owner.as_deref())
    }
}

/// What order validation needs to know about accounts and products.
pub trait Directory: Send + Sync + 'static {
    /// The account with `id`, if it exists.
    fn account(
        &self,
        id: Uuid,
        trace: &TraceContext,
    ) -> impl Future<Output = Result<Option<KnownAccount>, ServiceError>> + Send;

    /// The products among `ids` that exist, with their current name, description and price, and whether they
    /// track their stock; unknown ids are left out.
    fn products(
        &self,
        ids: &[Uuid],
        trace: &TraceContext,
    ) -> impl Future<Output = Result<HashMap<Uuid, CatalogProduct>, ServiceError>> + Send;

    /// The time before which the directory knows every account and product that was created: one created before
    /// it and not found does not exist. `None` while that is not known.
    fn known_through(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, ServiceError>> + Send;

    /// What the directory holds of the names one order uses: [`account`](Self::account), then
    /// [`products`](Self::products), unless the directory can answer both at once.
    fn names(
        &self,
        account_id: Uuid,
        product_ids: &[Uuid],
        trace: &TraceContext,
    ) -> impl Future<Output = Result<Names, ServiceError>> + Send {
        async move {
            // Two services, one wait.
            let (account, products) =
                tokio::try_join!(self.account(account_id, trace), self.products(product_ids, trace))?;
            Ok(Names { account, products })
        }
    }

    /// What the directory holds of the names each of `orders` uses, in their order, each asked under its trace:
    /// [`names`](Self::names) for one order after the other, unless the directory can answer a batch at once.
    fn names_of_each(
        &self,
        orders: &[(&Order, &TraceContext)],
    ) -> impl Future<Output = Result<Vec<Names>, ServiceError>> + Send {
        async move {
            let mut names = Vec::with_capacity(orders.len());
            for (order, trace) in orders {
                names.push(self.names(order.account_id, &order.product_ids(), trace).await?);
            }
            Ok(names)
        }
    }
}

/// What a directory holds of the account and products one order names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// The account, if the directory holds it.
    pub account: Option<KnownAccount>,
    /// The products found, by id; unknown ids are left out.
    pub products: HashMap<Uuid, CatalogProduct>,
}

impl Names {
    /// Whether the directory holds `order`'s account and the order may name it ([`KnownAccount::open_to`]). To
    /// validation, an account the order may not name is one the directory does not hold.
    pub fn account_known_to(&self, order: &Order) -> bool {
        self.account.as_ref().is_some_and(|account| account.open_to(order))
    }

    /// Whether the account (as [`account_known_to`](Self::account_known_to) sees it) and every product of `order`
    /// are known.
    pub fn knows(&self, order: &Order) -> bool {
        self.account_known_to(order)
            && order.lines.iter().all(|line| self.products.contains_key(&line.product_id))
    }
}

/// Asks the account and catalog services over gRPC: one call for the account, one batch call for the products. A
/// batch of orders is asked order by order, each under its own trace: the account service reads one account per
/// call, and the catalog at most 1000 products.
#[derive(Debug, Clone)]
pub struct GrpcDirectory {
    accounts: AccountServiceClient<TracedChannel>,
    catalog: CatalogServiceClient<TracedChannel>,
}

impl GrpcDirectory {
    pub fn new(accounts: TracedChannel, catalog: TracedChannel) -> Self {
        Self {
            accounts: shop_platform::limit_message_sizes!(AccountServiceClient::new(accounts)),
            catalog: shop_platform::limit_message_sizes!(CatalogServiceClient::new(catalog)),
        }
    }
}

/// A dependency's failure, as this service reports it: unreachable or too slow is UNAVAILABLE (the caller may
/// retry); anything else is unexpected.
pub(crate) fn dependency_error(service: &str, status: Status) -> ServiceError {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
            ServiceError::Unavailable(format!("the {service} service is unavailable; retry later"))
        }
        code => ServiceError::Unexpected(anyhow::anyhow!(
            "The {service} service answered {code:?}: {}",
            status.message()
        )),
    }
}

impl Directory for GrpcDirectory {
    /// The account and catalog services own the data: what they do not know does not exist.
    async fn known_through(&self) -> Result<Option<DateTime<Utc>>, ServiceError> {
        Ok(Some(Utc::now()))
    }

    /// Asked without the caller's identity: the order service looks the account up for itself, and decides what
    /// the caller may see.
    async fn account(&self, id: Uuid, trace: &TraceContext) -> Result<Option<KnownAccount>, ServiceError> {
        let request = traced_request(GetAccountRequest { id: id.to_string() }, trace);
        match self.accounts.clone().get_account(request).await {
            Ok(response) => {
                let account = response.into_inner().account.ok_or_else(|| {
                    ServiceError::Unexpected(anyhow::anyhow!("The account service answered no account"))
                })?;
                Ok(Some(KnownAccount { owner: account.owner }))
            }
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(dependency_error("account", status)),
        }
    }

    async fn products(
        &self,
        ids: &[Uuid],
        trace: &TraceContext,
    ) -> Result<HashMap<Uuid, CatalogProduct>, ServiceError> {
        let request =
            GetProductsRequest { ids: ids.iter().map(ToString::to_string).collect(), ..Default::default() };
        let products = self
            .catalog
            .clone()
            .get_products(traced_request(request, trace))
            .await
            .map_err(|status| dependency_error("catalog", status))?
            .into_inner()
            .products;
        products
            .into_iter()
            .map(|product| {
                let id = product.id.parse::<Uuid>().map_err(|_| {
                    ServiceError::Unexpected(anyhow::anyhow!(
                        "The catalog returned a malformed id {:?}",
                        product.id
                    ))
                })?;
                let priced = PricedProduct {
                    name: product.name,
                    description: product.description,
                    unit_price_cents: product.price_cents,
                };
                Ok((id, CatalogProduct { priced, tracks_stock: product.stock.is_some() }))
            })
            .collect()
    }
}

/// An in-memory directory for unit tests: what it was given exists, everything else does not, and it is complete
/// through whatever time the test says.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Clones share their contents, so a test can add names while a service holds the directory.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct InMemoryDirectory {
        /// Each account's owner, by id.
        accounts: Arc<Mutex<HashMap<Uuid, Option<String>>>>,
        products: Arc<Mutex<HashMap<Uuid, CatalogProduct>>>,
        pub(crate) known_through: Arc<Mutex<Option<DateTime<Utc>>>>,
    }

    impl InMemoryDirectory {
        pub(crate) fn add_account(&self) -> Uuid {
            let id = Uuid::now_v7();
            self.insert_account(id);
            id
        }

        pub(crate) fn add_account_owned_by(&self, owner: &str) -> Uuid {
            let id = Uuid::now_v7();
            self.accounts.lock().unwrap().insert(id, Some(owner.to_owned()));
            id
        }

        pub(crate) fn add_product(&self, name: &str, unit_price_cents: i64) -> Uuid {
            let id = Uuid::now_v7();
            self.insert_product(id, name, unit_price_cents);
            id
        }

        pub(crate) fn insert_account(&self, id: Uuid) {
            self.accounts.lock().unwrap().insert(id, None);
        }

        pub(crate) fn insert_product(&self, id: Uuid, name: &str, unit_price_cents: i64) {
            let priced = PricedProduct { name: name.into(), description: String::new(), unit_price_cents };
            self.products.lock().unwrap().insert(id, CatalogProduct { priced, tracks_stock: false });
        }

        /// A product that tracks its stock: orders naming it wait for the catalog's reservation.
        pub(crate) fn add_stocked_product(&self, name: &str, unit_price_cents: i64) -> Uuid {
            let id = self.add_product(name, unit_price_cents);
            self.products.lock().unwrap().get_mut(&id).expect("just added").tracks_stock = true;
            id
        }
    }

    impl Directory for InMemoryDirectory {
        async fn account(
            &self,
            id: Uuid,
            _trace: &TraceContext,
        ) -> Result<Option<KnownAccount>, ServiceError> {
            let accounts = self.accounts.lock().unwrap();
            Ok(accounts.get(&id).map(|owner| KnownAccount { owner: owner.clone() }))
        }

        async fn products(
            &self,
            ids: &[Uuid],
            _trace: &TraceContext,
        ) -> Result<HashMap<Uuid, CatalogProduct>, ServiceError> {
            let products = self.products.lock().unwrap();
            Ok(ids.iter().filter_map(|id| products.get(id).map(|product| (*id, product.clone()))).collect())
        }

        async fn known_through(&self) -> Result<Option<DateTime<Utc>>, ServiceError> {
            Ok(*self.known_through.lock().unwrap())
        }
    }
}
