//! What the run knows of the shop: its customers (account, token, orders placed, where their browsing is), the
//! products it may order, and the words it searches for; and the seed that fills it before anything is measured.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{StreamExt, TryStreamExt, stream};
use rand::{Rng, seq::IndexedRandom};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    LoadError,
    client::{Failure, Gateway},
    config::{Credentials, LoadConfig},
};

/// The order ids a customer remembers, newest last: enough for look-ups to vary without growing for hours.
const REMEMBERED_ORDERS: usize = 20;
/// Requests the seed sends at once.
const SEED_CONCURRENCY: usize = 8;
/// The most products of the existing catalog the run reads (the first page, at the largest page size).
const FOUND_PRODUCTS: usize = 100;

const ADJECTIVES: [&str; 12] = [
    "copper", "linen", "walnut", "ceramic", "woollen", "steel", "bamboo", "glass", "velvet", "cedar",
    "slate", "cotton",
];
const NOUNS: [&str; 12] = [
    "kettle", "teapot", "blanket", "lamp", "mug", "chair", "basket", "vase", "cushion", "skillet", "clock",
    "towel",
];

/// A customer of the run: an account and, when the shop wants one, the token of the subject that owns it.
#[derive(Debug)]
pub(crate) struct Customer {
    pub(crate) account_id: String,
    pub(crate) token: Option<String>,
    orders: Mutex<VecDeque<String>>,
    /// Where the customer's browsing is: the last product id of the page seen, `None` at the start.
    browse_cursor: Mutex<Option<String>>,
}

impl Customer {
    fn new(account_id: String, token: Option<String>) -> Self {
        Self { account_id, token, orders: Mutex::default(), browse_cursor: Mutex::default() }
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Remembers order `id`; true when it is the customer's first.
    fn remember_order(&self, id: String) -> bool {
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if orders.len() == REMEMBERED_ORDERS {
            orders.pop_front();
        }
        orders.push_back(id);
        orders.len() == 1
    }

    /// One of the customer's orders, or the latest.
    pub(crate) fn order(&self, rng: &mut impl Rng, latest: bool) -> Option<String> {
        let orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if latest {
            orders.back().cloned()
        } else {
            orders.get(rng.random_range(0..orders.len().max(1))).cloned()
        }
    }

    pub(crate) fn browse_cursor(&self) -> Option<String> {
        self.browse_cursor.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_browse_cursor(&self, cursor: Option<String>) {
        *self.browse_cursor.lock().unwrap_or_else(PoisonError::into_inner) = cursor;
    }
}

/// Who and what the run acts on. Customers are added as they sign up; products are fixed after the seed.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) credentials: Credentials,
    customers: RwLock<Vec<Arc<Customer>>>,
    /// The customers that placed an order: those order look-ups and follow-ups pick from.
    ordering: RwLock<Vec<Arc<Customer>>>,
    pub(crate) products: Vec<String>,
    pub(crate) search_terms: Vec<String>,
    /// Distinguishes this run's subjects from every other run's, as a subject owns one account for good.
    run_id: String,
    sign_ups: AtomicU64,
}

impl World {
    /// A customer picked at random.
    pub(crate) fn customer(&self, rng: &mut impl Rng) -> Option<Arc<Customer>> {
        self.customers.read().unwrap_or_else(PoisonError::into_inner).choose(rng).cloned()
    }

    /// A customer that placed an order, picked at random.
    pub(crate) fn ordering_customer(&self, rng: &mut impl Rng) -> Option<Arc<Customer>> {
        self.ordering.read().unwrap_or_else(PoisonError::into_inner).choose(rng).cloned()
    }

    /// Records that `customer` placed order `id`.
    pub(crate) fn order_placed(&self, customer: &Arc<Customer>, id: String) {
        // Decided under the customer's lock, so that two first orders placed at once add it once.
        if customer.remember_order(id) {
            self.ordering.write().unwrap_or_else(PoisonError::into_inner).push(customer.clone());
        }
    }

    /// Signs a new customer up (`createAccount`) and adds it to the customers.
    pub(crate) async fn sign_up(&self, gateway: &Gateway) -> Result<(), Failure> {
        let n = self.sign_ups.fetch_add(1, Ordering::Relaxed);
        let token = match &self.credentials {
            Credentials::Anonymous => None,
            Credentials::Issuer(issuer) => {
                let subject = format!("load-{}-{n}", self.run_id);
                Some(issuer.mint(&subject, false).map_err(|_| Failure::new("TOKEN_ISSUER"))?)
            }
            Credentials::Given { customer, .. } => Some(customer.clone()),
        };
        let query = "mutation($name: String!) { createAccount(account: {name: $name}) { id } }";
        let variables = json!({ "name": format!("Load customer {n}") });
        let data = gateway.call(query, variables, token.as_deref()).await?;
        let id = string(&data["createAccount"]["id"], "NO_ACCOUNT_ID")?;
        self.customers.write().unwrap_or_else(PoisonError::into_inner).push(Customer::new(id, token).into());
        Ok(())
    }

    /// The seed: products added (when allowed) and listed, customers signed up (or found, for a given token), and
    /// one order for each customer.
    pub(crate) async fn seed(config: &LoadConfig, gateway: &Gateway) -> Result<Self, LoadError> {
        let mut world = Self {
            credentials: config.credentials.clone(),
            customers: RwLock::default(),
            ordering: RwLock::default(),
            products: Vec::new(),
            search_terms: Vec::new(),
            run_id: Uuid::now_v7().simple().to_string()[24..].to_owned(),
            sign_ups: AtomicU64::new(0),
        };
        world.add_products(config.seed.products, gateway).await?;
        match &world.credentials {
            Credentials::Given { customer, .. } => world.find_own_accounts(customer, gateway).await?,
            _ => {
                stream::iter(0..config.seed.accounts)
                    .map(|_| world.sign_up(gateway))
                    .buffer_unordered(SEED_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await
                    .map_err(|failure| seed_failure("createAccount", &failure))?;
            }
        }
        let customers = world.customers.read().unwrap_or_else(PoisonError::into_inner).clone();
        if customers.is_empty() {
            return Err(LoadError::Seed("no customers: seed at least one account".into()));
        }
        stream::iter(&customers)
            .map(|customer| world.seed_order(customer, gateway))
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(world)
    }

    /// Adds `count` products when the credentials may, then reads the catalog's first page: the products orders
    /// draw from, and the words searches use.
    async fn add_products(&mut self, count: usize, gateway: &Gateway) -> Result<(), LoadError> {
        let staff = match &self.credentials {
            Credentials::Anonymous => Some(None),
            Credentials::Issuer(issuer) => Some(Some(
                issuer.mint(&format!("load-{}-staff", self.run_id), true).map_err(LoadError::Unexpected)?,
            )),
            Credentials::Given { staff, .. } => staff.clone().map(Some),
        };
        if let Some(token) = staff {
            let query = "mutation($product: ProductInput!) { createProduct(product: $product) { id name } }";
            let created: Vec<Value> = stream::iter(0..count)
                .map(|n| {
                    let (adjective, noun) =
                        (ADJECTIVES[n % ADJECTIVES.len()], NOUNS[(n / ADJECTIVES.len()) % NOUNS.len()]);
                    let cents = rand::rng().random_range(100..20_000);
                    let product = json!({
                        "name": format!("{} {noun} {}", capitalised(adjective), self.run_id),
                        "description": format!("A {adjective} {noun}, added by shop load."),
                        "price": f64::from(cents) / 100.0,
                    });
                    gateway.call(query, json!({ "product": product }), token.as_deref())
                })
                .buffer_unordered(SEED_CONCURRENCY)
                .try_collect()
                .await
                .map_err(|failure| seed_failure("createProduct", &failure))?;
            self.add_known_products(created.iter().map(|data| &data["createProduct"]));
        }
        let query = "query($take: Int!) { products(pagination: {take: $take}) { id name } }";
        let page = gateway
            .call(query, json!({ "take": FOUND_PRODUCTS }), None)
            .await
            .map_err(|failure| seed_failure("listing products", &failure))?;
        self.add_known_products(page["products"].as_array().into_iter().flatten());
        if self.products.is_empty() {
            return Err(LoadError::Seed(
                "the catalog is empty and these credentials may not add products (give a staff token)".into(),
            ));
        }
        Ok(())
    }

    fn add_known_products<'a>(&mut self, products: impl Iterator<Item = &'a Value>) {
        for product in products {
            let (Some(id), Some(name)) = (product["id"].as_str(), product["name"].as_str()) else { continue };
            if self.products.iter().any(|known| known == id) {
                continue;
            }
            self.products.push(id.to_owned());
            // Words a shopper would type: letters only, long enough for full-text search to keep.
            for word in name.split(|c: char| !c.is_alphabetic()).filter(|word| word.len() >= 3) {
                let word = word.to_lowercase();
                if !self.search_terms.contains(&word) {
                    self.search_terms.push(word);
                }
            }
        }
    }

    /// With a given token: the accounts it may use (a customer's own, or every account for staff), opening the
    /// customer's one if it has none yet.
    async fn find_own_accounts(&self, token: &str, gateway: &Gateway) -> Result<(), LoadError> {
        let query = "{ accounts(pagination: {take: 100}) { id } }";
        let data = gateway
            .call(query, json!({}), Some(token))
            .await
            .map_err(|failure| seed_failure("listing the token's accounts", &failure))?;
        let ids: Vec<String> = data["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|account| account["id"].as_str().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return self.sign_up(gateway).await.map_err(|failure| seed_failure("createAccount", &failure));
        }
        let mut customers = self.customers.write().unwrap_or_else(PoisonError::into_inner);
        customers.extend(ids.into_iter().map(|id| Customer::new(id, Some(token.to_owned())).into()));
        Ok(())
    }

    async fn seed_order(&self, customer: &Arc<Customer>, gateway: &Gateway) -> Result<(), LoadError> {
        let lines = self.order_lines(&mut rand::rng());
        crate::operations::place_order(self, customer, lines, gateway)
            .await
            .map_err(|failure| seed_failure("createOrder", &failure))
    }

    /// 1 to 5 distinct known products, 1 to 3 of each.
    pub(crate) fn order_lines(&self, rng: &mut impl Rng) -> Vec<Value> {
        let count = rng.random_range(1..=5.min(self.products.len()));
        let chosen: Vec<&String> = self.products.choose_multiple(rng, count).collect();
        chosen.into_iter().map(|id| json!({ "id": id, "quantity": rng.random_range(1..=3) })).collect()
    }
}

/// The seed's error for `what` failing, with what to do about the usual causes.
fn seed_failure(what: &str, failure: &Failure) -> LoadError {
    let hint = match failure.0.as_str() {
        "UNAUTHENTICATED" => {
            "; the shop requires tokens: --auth dev for a development shop, --token otherwise"
        }
        "FORBIDDEN" => "; adding products needs a staff token (--staff-token), or --seed-products 0",
        "TRANSPORT_CONNECT" => "; is the shop running at that address?",
        _ => "",
    };
    LoadError::Seed(format!("{what} failed with {failure}{hint}"))
}

/// A string the shop answered, or `code` when it is missing.
pub(crate) fn string(value: &Value, code: &str) -> Result<String, Failure> {
    value.as_str().map(str::to_owned).ok_or_else(|| Failure::new(code))
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
