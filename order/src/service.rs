//! The order use cases. The service owns the transaction boundary: an order, its lines and its outbox events are
//! committed together or not at all.

use std::{sync::Arc, time::Duration};

use shop_events::{Envelope, TraceContext, order::OrderEvent};
use shop_outbox as outbox;
use shop_platform::{ServiceError, pagination::Page, trace};
use sqlx::PgPool;
use tokio::{sync::Notify, time::Instant};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    config::DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS,
    directory::Directory,
    domain::{IdempotencyKey, NewOrder, Order, OrderError, OrderStatus, PlacedBy, fingerprint},
    metrics, repository,
    saga::{self, catalog::CatalogStock},
    validation::PricedAnswer,
};

/// The most accounts one batch look-up may ask for.
pub const MAX_ACCOUNTS_PER_CALL: usize = 1_000;

/// When an order is validated.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Before `PostOrder` answers, against the directory: the order is stored confirmed or not at all — or, when
    /// it names a product that tracks its stock, stored awaiting stock, reserved from the `catalog` over gRPC, and
    /// answered confirmed or rejected.
    Synchronous { catalog: CatalogStock },
    /// By the [`Validator`](crate::validation::Validator), which `validator` wakes when an order is stored
    /// pending; or, with a `priced` answer, by `PostOrder` itself when the directory knows the order's names in
    /// time.
    Deferred { validator: Arc<Notify>, priced: Option<PricedAnswer> },
}

impl Placement {
    /// Deferred placement that stores every order pending and answers at once.
    pub fn deferred(validator: Arc<Notify>) -> Self {
        Self::Deferred { validator, priced: None }
    }
}

/// The order service's use cases, over its database and a [`Directory`] of accounts and products.
#[derive(Debug, Clone)]
pub struct OrderService<D> {
    pool: PgPool,
    directory: D,
    placement: Placement,
    /// How long an idempotency key answers the order it placed.
    key_ttl: Duration,
}

/// What storing an order came to.
#[derive(Debug)]
enum Stored {
    Placed(Order),
    /// Its idempotency key had placed `order_id` already, for the same request or not.
    KeyTaken {
        order_id: Uuid,
        same_request: bool,
    },
}

/// Why an order could not be stored.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Service(ServiceError),
}

impl StoreError {
    fn is_refused_for_its_data(&self) -> bool {
        matches!(self, Self::Database(error) if shop_projection::is_refused_for_its_data(error))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => error.into(),
            StoreError::Service(error) => error,
        }
    }
}

/// What placing an order comes to before anything is stored.
#[derive(Debug)]
enum Attempt<T> {
    /// A new order, to store.
    New(T),
    /// A retry: an earlier attempt with the same key and the same request placed this order.
    Repeated(Order),
}

/// A deferred order as placement leaves it, before it is stored.
#[derive(Debug)]
struct Deferred {
    /// The order pending, and its `OrderPlaced` event.
    pending: (Order, Envelope),
    /// The order decided before the answer, and the event of its transition, when the directory allowed it.
    decided: Option<(Order, Envelope)>,
}

impl<D: Directory> OrderService<D> {
    /// The service, keeping idempotency keys for the default time.
    pub fn new(pool: PgPool, directory: D, placement: Placement) -> Self {
        let key_ttl = Duration::from_secs(DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS);
        Self { pool, directory, placement, key_ttl }
    }

    /// The same service, with idempotency keys answering the order they placed for `ttl`, and no longer.
    pub fn keeping_keys_for(self, ttl: Duration) -> Self {
        Self { key_ttl: ttl, ..self }
    }

    /// Places an order, as [`place_order_within`](Self::place_order_within) does for a caller without a deadline.
    pub async fn place_order(
        &self,
        new_order: NewOrder,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        self.place_order_within(new_order, None, trace, None).await
    }

    /// Places an order. Synchronous placement validates it against the directory, prices it and stores it
    /// confirmed with its `OrderPlaced` and `OrderConfirmed` events (an unknown account or product is NOT_FOUND and
    /// stores nothing; so is, for an order a customer places, an account that is not theirs, answered exactly as a
    /// missing one). Deferred placement refuses a customer's order alike when the directory already holds the
    /// account and it is another's, and stores the order pending with its `OrderPlaced` event; with a priced answer, it
    /// first gives the directory until the answer's wait (at most half of `allowed`, the time the caller gives the
    /// call, if it said) to know the order's names, and stores the order decided (confirmed, priced) with both
    /// events when it does.
    ///
    /// With an idempotency `key`, the order is stored only if the key is not claimed yet for its account (claimed
    /// in the same transaction): otherwise the answer is the order the key placed, as it stands now, when the
    /// request is the same, and ALREADY_EXISTS when it is not. The caller's right to the account is checked first,
    /// so a key never tells anything about another's account; a key already stored is answered right after that
    /// check, before the products are looked up or priced, so a retry is answered even when validating the order
    /// again would now fail or wait (a catalog down, a projection lagging).
    #[tracing::instrument(skip_all, fields(account_id = %new_order.account_id(), order_id))]
    pub async fn place_order_within(
        &self,
        new_order: NewOrder,
        key: Option<&IdempotencyKey>,
        trace: &TraceContext,
        allowed: Option<Duration>,
    ) -> Result<Order, ServiceError> {
        let stored = match &self.placement {
            Placement::Synchronous { .. } => match self.place_synchronously(new_order, key, trace).await? {
                Attempt::New((order, events)) => self.store(order, &events, key, trace).await?,
                Attempt::Repeated(order) => return Ok(order),
            },
            Placement::Deferred { validator, priced } => {
                match self.place_deferred(new_order, key, trace, priced.as_ref(), allowed).await? {
                    Attempt::New(deferred) => self.store_deferred(deferred, key, validator, trace).await?,
                    Attempt::Repeated(order) => return Ok(order),
                }
            }
        };
        let order = match stored {
            Stored::Placed(order) => order,
            Stored::KeyTaken { order_id, same_request } => {
                return self.key_taken(order_id, same_request).await;
            }
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        tracing::info!(order_id = %order.id, status = order.status.as_str(), "Placed an order.");
        match &self.placement {
            Placement::Synchronous { catalog } if order.status == OrderStatus::AwaitingStock => {
                self.reserve_synchronously(catalog, order, trace).await
            }
            _ => Ok(order),
        }
    }

    /// `grpc` mode's stock step for `order`, stored awaiting stock: asks the catalog to reserve it and settles the
    /// answer (confirmed, or rejected naming the shortages). When the catalog cannot be asked, the order is
    /// rejected and owes a release — the catalog may have held the stock before its answer was lost — which is
    /// asked for at once, and otherwise by the deadline sweep until the catalog answers.
    async fn reserve_synchronously(
        &self,
        catalog: &CatalogStock,
        order: Order,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        let answer = match catalog.reserve(&order, trace).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(order_id = %order.id, error.message = %error, "Could not reserve an order's stock.");
                let reason = format!("the catalog could not reserve the order's stock: {error}");
                let rejected = self
                    .change_order(order.id, trace, |order| order.reject(reason).map_err(unexpected))
                    .await?;
                return self.release_if_owed(catalog, rejected, trace).await;
            }
        };
        let mut transaction = self.pool.begin().await?;
        let settled = saga::settle(&mut transaction, order.id, &answer).await?;
        transaction.commit().await?;
        match settled {
            Some(order) => Ok(order),
            // Changed meanwhile (cancelled, or timed out by a sweep): answered as it stands, released if it owes.
            None => {
                let order = self.order(order.id).await?;
                self.release_if_owed(catalog, order, trace).await
            }
        }
    }

    /// Asks the catalog to release what it may hold for `order` when the order owes a release, and settles the
    /// answer; returns the order as it then stands. A catalog that cannot be asked leaves the release owed, for the
    /// deadline sweep to ask again.
    async fn release_if_owed(
        &self,
        catalog: &CatalogStock,
        order: Order,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        if !order.stock_release_pending {
            return Ok(order);
        }
        let answer = match catalog.release(order.id, trace).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(
                    order_id = %order.id,
                    error.message = %error,
                    "Could not ask the catalog to release an order's stock; the deadline sweep asks again."
                );
                return Ok(order);
            }
        };
        let mut transaction = self.pool.begin().await?;
        let settled = saga::settle(&mut transaction, order.id, &answer).await?;
        transaction.commit().await?;
        Ok(settled.unwrap_or(order))
    }

    /// Cancels order `id` unless it is final (FAILED_PRECONDITION), storing it with its `OrderCancelled` event.
    /// A customer may cancel only the orders of the account they own: any other is NOT_FOUND, exactly like a
    /// missing one. An order that awaited stock owes a release: in `grpc` mode it is asked for at once; in
    /// projection mode the catalog releases when it consumes the cancellation.
    #[tracing::instrument(skip_all, fields(order_id = %id))]
    pub async fn cancel_order(
        &self,
        id: Uuid,
        by: &PlacedBy,
        trace: &TraceContext,
    ) -> Result<Order, ServiceError> {
        let order = self.order(id).await?;
        if let PlacedBy::Customer(_) = by {
            let owner =
                self.directory.account(order.account_id, trace).await?.and_then(|account| account.owner);
            if !by.may_order_for(owner.as_deref()) {
                return Err(unknown_order(id));
            }
        }
        let who = match by {
            PlacedBy::Customer(_) => "the customer",
            PlacedBy::Unrestricted => "staff",
        };
        let cancelled = self
            .change_order(id, trace, |order| match order.cancel(who) {
                Err(OrderError::Final(status)) => Err(ServiceError::FailedPrecondition(format!(
                    "order {id} is {} already and can no longer be cancelled",
                    status.as_str()
                ))),
                changed => changed.map_err(unexpected),
            })
            .await?;
        tracing::info!(order_id = %id, stock_release_pending = cancelled.stock_release_pending, "Cancelled an order.");
        match &self.placement {
            Placement::Synchronous { catalog } => self.release_if_owed(catalog, cancelled, trace).await,
            Placement::Deferred { .. } => Ok(cancelled),
        }
    }

    /// Locks order `id`, applies `change`, and stores the order with the event of its transition in one
    /// transaction; returns the order after it. NOT_FOUND for a missing order.
    async fn change_order(
        &self,
        id: Uuid,
        trace: &TraceContext,
        change: impl FnOnce(&mut Order) -> Result<OrderEvent, ServiceError>,
    ) -> Result<Order, ServiceError> {
        let mut transaction = self.pool.begin().await?;
        let (mut order, _) =
            repository::lock_order(&mut transaction, id).await?.ok_or_else(|| unknown_order(id))?;
        let event = change(&mut order)?;
        repository::update_order(&mut transaction, &order).await?;
        outbox::append(&mut transaction, &event.to_envelope(Some(trace))).await?;
        transaction.commit().await?;
        metrics::settled(&order);
        Ok(order)
    }

    /// The order validated and priced against the directory, with its events; or, once the account is known to
    /// be the caller's to name, the order an earlier attempt with `key` placed. Stores nothing.
    async fn place_synchronously(
        &self,
        new_order: NewOrder,
        key: Option<&IdempotencyKey>,
        trace: &TraceContext,
    ) -> Result<Attempt<(Order, Vec<Envelope>)>, ServiceError> {
        let (mut order, placed) = Order::place(new_order);
        // The key, the account and the products are looked up at once: three reads, one wait. The account and
        // the products are asked for side by side (two services); the products' answer matters only once the
        // account was and no earlier attempt answers, so a retry is answered even while the catalog is away.
        let catalog = {
            let product_ids = order.product_ids();
            let directory = async {
                tokio::join!(
                    self.require_account_open_to(&order, trace),
                    self.directory.products(&product_ids, trace)
                )
            };
            let key_owner = self.key_owner(&order, key);
            tokio::pin!(directory, key_owner);
            if order.placed_by != PlacedBy::Unrestricted {
                // A customer's right to the account comes before anything the key placed is told.
                let ((account, catalog), owner) = tokio::join!(&mut directory, &mut key_owner);
                account?;
                if let Some(earlier) = self.earlier_answer(&order, owner?).await? {
                    return Ok(Attempt::Repeated(earlier));
                }
                catalog?
            } else {
                // An unrestricted caller may name any account, and a key it used proves the account existed: its
                // retry is answered as soon as the key is found, without waiting for the account and catalog
                // services (which may be away).
                let mut answered = None;
                let owner = loop {
                    tokio::select! {
                        owner = &mut key_owner => break owner,
                        answers = &mut directory, if answered.is_none() => answered = Some(answers),
                    }
                };
                if let Some(earlier) = self.earlier_answer(&order, owner?).await? {
                    return Ok(Attempt::Repeated(earlier));
                }
                let (account, catalog) = match answered {
                    Some(answers) => answers,
                    None => directory.await,
                };
                account?;
                catalog?
            }
        };
        let accepted = order.accept(&catalog).map_err(|error| match error {
            OrderError::UnknownProducts(_) => ServiceError::NotFound(error.to_string()),
            OrderError::TotalTooLarge => ServiceError::invalid("lines", error.to_string()),
            _ => ServiceError::Unexpected(anyhow::Error::new(error)),
        })?;
        let events = vec![Envelope::new(&placed, Some(trace)), accepted.to_envelope(Some(trace))];
        Ok(Attempt::New((order, events)))
    }

    /// The order pending and, if `priced` lets the directory decide it in time, decided; or, once the account is
    /// not known to be another's, the order an earlier attempt with `key` placed. Stores nothing.
    async fn place_deferred(
        &self,
        new_order: NewOrder,
        key: Option<&IdempotencyKey>,
        trace: &TraceContext,
        priced: Option<&PricedAnswer>,
        allowed: Option<Duration>,
    ) -> Result<Attempt<Deferred>, ServiceError> {
        let (pending, placed) = Order::place(new_order);
        self.refuse_anothers_account(&pending, trace).await?;
        if let Some(earlier) = self.earlier_attempt(&pending, key).await? {
            return Ok(Attempt::Repeated(earlier));
        }
        let pending = (pending, Envelope::new(&placed, Some(trace)));
        let wait =
            priced.map_or(Duration::ZERO, |priced| priced.wait.min(allowed.map_or(Duration::MAX, |a| a / 2)));
        let Some(priced) = priced.filter(|_| !wait.is_zero()) else {
            return Ok(Attempt::New(Deferred { pending, decided: None }));
        };
        let mut order = pending.0.clone();
        let deadline = Instant::now() + wait;
        let decided = priced.decide(&self.directory, &mut order, trace, deadline).await?;
        Ok(Attempt::New(Deferred { pending, decided: decided.map(|event| (order, event)) }))
    }

    /// The order an earlier attempt placed with `key` for `order`'s account, when its request was the same as
    /// `order`'s (ALREADY_EXISTS when it was another); `None` when the key has placed nothing yet, or no key was
    /// sent. Called only once the caller may name the account: what a key placed is never told to another.
    async fn earlier_attempt(
        &self,
        order: &Order,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Order>, ServiceError> {
        let owner = self.key_owner(order, key).await?;
        self.earlier_answer(order, owner).await
    }

    /// The order `key` placed for `order`'s account, and the request it placed it for; `None` when the key has
    /// placed nothing yet, or no key was sent. Tells the caller nothing by itself: [`Self::earlier_answer`] does,
    /// once the caller may name the account.
    async fn key_owner(
        &self,
        order: &Order,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<(Uuid, String)>, ServiceError> {
        let Some(key) = key else { return Ok(None) };
        let mut connection = self.pool.acquire().await?;
        let owner =
            repository::idempotency_key_owner(&mut connection, order.account_id, key.as_str(), self.key_ttl)
                .await?;
        Ok(owner)
    }

    /// [`Self::earlier_attempt`]'s answer, given what [`Self::key_owner`] found.
    async fn earlier_answer(
        &self,
        order: &Order,
        owner: Option<(Uuid, String)>,
    ) -> Result<Option<Order>, ServiceError> {
        let Some((order_id, first_request)) = owner else { return Ok(None) };
        self.key_taken(order_id, first_request == fingerprint(order)).await.map(Some)
    }

    /// The answer when a key already placed `order_id`: that order, as it stands now, for the same request;
    /// ALREADY_EXISTS for another.
    async fn key_taken(&self, order_id: Uuid, same_request: bool) -> Result<Order, ServiceError> {
        if !same_request {
            return Err(ServiceError::AlreadyExists(format!(
                "the idempotency key was already used for another order ({order_id}) of this account"
            )));
        }
        tracing::Span::current().record("order_id", tracing::field::display(order_id));
        tracing::info!(%order_id, "A retry of a placed order; answering with that order.");
        self.order(order_id).await
    }

    /// NOT_FOUND, as for a missing account, unless the directory holds `order`'s account and whoever placed the
    /// order may name it.
    async fn require_account_open_to(&self, order: &Order, trace: &TraceContext) -> Result<(), ServiceError> {
        let account = self.directory.account(order.account_id, trace).await?;
        if !account.is_some_and(|account| account.open_to(order)) {
            return Err(unknown_account(order.account_id));
        }
        Ok(())
    }

    /// NOT_FOUND, as for a missing account, when a customer placed `order` and the directory holds its account
    /// and it is another's. An account the directory does not hold yet is left to validation, which rejects the
    /// order as naming an unknown account should it turn out to be another's.
    async fn refuse_anothers_account(&self, order: &Order, trace: &TraceContext) -> Result<(), ServiceError> {
        // An unrestricted order may name any account: no look-up.
        if order.placed_by == PlacedBy::Unrestricted {
            return Ok(());
        }
        match self.directory.account(order.account_id, trace).await? {
            Some(account) if !account.open_to(order) => Err(unknown_account(order.account_id)),
            _ => Ok(()),
        }
    }

    /// Stores a deferred order: decided if it was, else pending (waking the validator). A decision the database
    /// refuses for the data it carries (a price no order may hold, in a projection filled before it was checked)
    /// leaves the order pending, for the validator to settle as it settles such orders.
    async fn store_deferred(
        &self,
        deferred: Deferred,
        key: Option<&IdempotencyKey>,
        validator: &Notify,
        trace: &TraceContext,
    ) -> Result<Stored, ServiceError> {
        let Deferred { pending: (pending, placed), decided } = deferred;
        if let Some((order, decision)) = decided {
            match self.store(order, &[placed.clone(), decision], key, trace).await {
                Ok(stored) => return Ok(stored),
                Err(error) if error.is_refused_for_its_data() => tracing::warn!(
                    order_id = %pending.id,
                    error.message = %error,
                    "The database refused an order's decision for the data it carries; storing the order pending."
                ),
                Err(error) => return Err(error.into()),
            }
        }
        let stored = self.store(pending, &[placed], key, trace).await?;
        if matches!(stored, Stored::Placed(_)) {
            validator.notify_one();
        }
        Ok(stored)
    }

    /// Stores `order` and its `events` in one transaction — unless `key` is already claimed for its account, in
    /// which case nothing is stored and the answer says which order the key placed.
    async fn store(
        &self,
        order: Order,
        events: &[Envelope],
        key: Option<&IdempotencyKey>,
        trace: &TraceContext,
    ) -> Result<Stored, StoreError> {
        let span = trace::transaction_span("order", "INSERT orders order_lines outbox");
        self.store_in_transaction(order, events, key, trace).instrument(span).await
    }

    async fn store_in_transaction(
        &self,
        order: Order,
        events: &[Envelope],
        key: Option<&IdempotencyKey>,
        trace: &TraceContext,
    ) -> Result<Stored, StoreError> {
        let mut transaction = self.pool.begin().await?;
        if let Some(key) = key {
            let request = fingerprint(&order);
            let claimed = repository::claim_idempotency_key(
                &mut transaction,
                order.account_id,
                key.as_str(),
                &request,
                order.id,
                self.key_ttl,
            )
            .await?;
            if !claimed {
                // The claim waited for any transaction holding the key, so its order is committed and readable.
                let owner = repository::idempotency_key_owner(
                    &mut transaction,
                    order.account_id,
                    key.as_str(),
                    self.key_ttl,
                )
                .await?;
                let Some((order_id, first_request)) = owner else {
                    // Deleted in between (it expired): a conflict the client may retry.
                    return Err(StoreError::Service(ServiceError::Conflict(
                        "the idempotency key expired while this request used it; send it again".into(),
                    )));
                };
                return Ok(Stored::KeyTaken { order_id, same_request: first_request == request });
            }
        }
        repository::insert_order(&mut transaction, &order, trace).await?;
        for event in events {
            outbox::append(&mut transaction, event).await?;
        }
        transaction.commit().await?;
        metrics::placed(&order);
        Ok(Stored::Placed(order))
    }

    pub async fn order(&self, id: Uuid) -> Result<Order, ServiceError> {
        let mut connection = self.pool.acquire().await?;
        repository::find_order(&mut connection, id).await?.ok_or_else(|| unknown_order(id))
    }

    /// A page of each given account's orders, newest first.
    pub async fn orders_for_accounts(
        &self,
        account_ids: &[Uuid],
        page: Page,
    ) -> Result<Vec<Order>, ServiceError> {
        if account_ids.len() > MAX_ACCOUNTS_PER_CALL {
            return Err(ServiceError::invalid(
                "account_ids",
                format!("must hold at most {MAX_ACCOUNTS_PER_CALL} ids"),
            ));
        }
        let mut account_ids = account_ids.to_vec();
        account_ids.sort_unstable();
        account_ids.dedup();
        let mut connection = self.pool.acquire().await?;
        Ok(repository::orders_for_accounts(&mut connection, &account_ids, page).await?)
    }
}

/// A transition the service only asks for when the order allows it, refused anyway: a bug.
fn unexpected(error: OrderError) -> ServiceError {
    ServiceError::Unexpected(anyhow::Error::new(error))
}

/// The answer for an order that does not exist, and for one the caller may not see: the same.
fn unknown_order(id: Uuid) -> ServiceError {
    ServiceError::NotFound(format!("order {id} does not exist"))
}

/// The answer for an account that does not exist, and for one the caller may not name: the same, so that a
/// customer cannot tell another's account from a missing one.
fn unknown_account(id: Uuid) -> ServiceError {
    ServiceError::NotFound(format!("account {id} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{directory::fake::InMemoryDirectory, domain::OrderStatus, validation::ValidationSettings};

    const WAIT: Duration = Duration::from_millis(500);

    /// Placement as these tests drive it: without an idempotency key, so always a new order.
    impl<D: Directory> OrderService<D> {
        async fn place_synchronously_without_key(
            &self,
            new_order: NewOrder,
            trace: &TraceContext,
        ) -> Result<(Order, Vec<Envelope>), ServiceError> {
            self.place_synchronously(new_order, None, trace).await.map(Attempt::fresh)
        }

        async fn place_deferred_without_key(
            &self,
            new_order: NewOrder,
            trace: &TraceContext,
            priced: Option<&PricedAnswer>,
            allowed: Option<Duration>,
        ) -> Result<Deferred, ServiceError> {
            self.place_deferred(new_order, None, trace, priced, allowed).await.map(Attempt::fresh)
        }
    }

    impl<T> Attempt<T> {
        fn fresh(self) -> T {
            match self {
                Self::New(attempt) => attempt,
                Self::Repeated(order) => panic!("no key was sent, yet order {} came back", order.id),
            }
        }
    }

    /// Synchronous placement with a catalog that is never reached: these tests name no product that tracks stock.
    fn synchronous() -> Placement {
        let nowhere = tonic::transport::Channel::from_static("http://127.0.0.1:1").connect_lazy();
        Placement::Synchronous { catalog: CatalogStock::new(nowhere.into()) }
    }

    fn service(directory: InMemoryDirectory, placement: Placement) -> OrderService<InMemoryDirectory> {
        // Placement decides without the database; the pool never connects.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("a valid URL");
        OrderService::new(pool, directory, placement)
    }

    /// A priced answer within `wait`, woken by `changed`; unknown names are rejected only after a minute.
    fn priced(wait: Duration, changed: &Arc<Notify>) -> PricedAnswer {
        let minute = Duration::from_secs(60);
        let settings =
            ValidationSettings { reject_after: minute, clock_skew: Duration::ZERO, interval: minute };
        PricedAnswer { wait, directory_changed: changed.clone(), settings }
    }

    fn order_for(account: Uuid, product: Uuid) -> NewOrder {
        NewOrder::parse(&account.to_string(), [(&*product.to_string(), 2)]).unwrap()
    }

    #[tokio::test]
    async fn synchronous_placement_prices_and_confirms_an_order_for_known_names() {
        // Given
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));

        // When
        let (order, events) = service(directory, synchronous())
            .place_synchronously_without_key(order_for(account, kettle), &TraceContext::new_root())
            .await
            .unwrap();

        // Then
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.total_price_cents, Some(4_998));
        let types: Vec<&str> = events.iter().map(|event| event.event_type.as_str()).collect();
        assert_eq!(types, ["shop.order.placed.v1", "shop.order.confirmed.v1"]);
    }

    #[tokio::test]
    async fn synchronous_placement_of_an_unknown_account_or_product_is_not_found() {
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));
        let service = service(directory, synchronous());
        let trace = TraceContext::new_root();

        let ghost_account = order_for(Uuid::now_v7(), kettle);
        let ghost_product = order_for(account, Uuid::now_v7());

        assert!(matches!(
            service.place_synchronously_without_key(ghost_account, &trace).await,
            Err(ServiceError::NotFound(_))
        ));
        assert!(matches!(
            service.place_synchronously_without_key(ghost_product, &trace).await,
            Err(ServiceError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_customers_order_for_anothers_or_an_unowned_account_is_not_found_exactly_like_a_missing_one() {
        // Given: Ada's account, an account nobody owns, and a kettle.
        let directory = InMemoryDirectory::default();
        let (adas, unowned) = (directory.add_account_owned_by("auth0|ada"), directory.add_account());
        let kettle = directory.add_product("Kettle", 2_499);
        let service = service(directory, synchronous());
        let trace = TraceContext::new_root();
        let grace = || PlacedBy::Customer("auth0|grace".into());

        for account in [adas, unowned, Uuid::now_v7()] {
            // When
            let refused =
                service.place_synchronously_without_key(order_for(account, kettle).by(grace()), &trace).await;

            // Then
            let Err(ServiceError::NotFound(message)) = refused else { panic!("{refused:?}") };
            assert_eq!(message, format!("account {account} does not exist"));
        }
    }

    #[tokio::test]
    async fn the_owner_and_unrestricted_callers_may_order_for_an_owned_account() {
        let directory = InMemoryDirectory::default();
        let (adas, kettle) =
            (directory.add_account_owned_by("auth0|ada"), directory.add_product("Kettle", 2_499));
        let service = service(directory, synchronous());
        let trace = TraceContext::new_root();

        for placed_by in [PlacedBy::Customer("auth0|ada".into()), PlacedBy::Unrestricted] {
            let placed =
                service.place_synchronously_without_key(order_for(adas, kettle).by(placed_by), &trace).await;

            assert_eq!(placed.unwrap().0.status, OrderStatus::Confirmed);
        }
    }

    #[tokio::test]
    async fn deferred_placement_refuses_a_customers_order_for_an_account_the_directory_holds_as_anothers() {
        // Given: Ada's account in the directory; another account it does not hold yet.
        let directory = InMemoryDirectory::default();
        let adas = directory.add_account_owned_by("auth0|ada");
        let service = service(directory, Placement::deferred(Arc::default()));
        let trace = TraceContext::new_root();
        let grace = || PlacedBy::Customer("auth0|grace".into());
        let not_yet_known = Uuid::now_v7();

        // When
        let refused = service
            .place_deferred_without_key(order_for(adas, Uuid::now_v7()).by(grace()), &trace, None, None)
            .await;
        let deferred = service
            .place_deferred_without_key(
                order_for(not_yet_known, Uuid::now_v7()).by(grace()),
                &trace,
                None,
                None,
            )
            .await
            .unwrap();

        // Then: refused as a missing account; the unknown one left pending, remembering who placed it.
        let Err(ServiceError::NotFound(message)) = refused else { panic!("{refused:?}") };
        assert_eq!(message, format!("account {adas} does not exist"));
        assert_eq!(deferred.pending.0.status, OrderStatus::Pending);
        assert_eq!(deferred.pending.0.placed_by, grace());
    }

    #[tokio::test]
    async fn deferred_placement_without_a_priced_answer_asks_nothing_and_leaves_the_order_pending() {
        // An empty directory: deferred placement does not look anything up.
        let new_order = order_for(Uuid::now_v7(), Uuid::now_v7());

        let deferred = service(InMemoryDirectory::default(), Placement::deferred(Arc::default()))
            .place_deferred_without_key(new_order, &TraceContext::new_root(), None, None)
            .await
            .unwrap();

        assert_eq!(deferred.pending.0.status, OrderStatus::Pending);
        assert_eq!(deferred.pending.1.event_type, "shop.order.placed.v1");
        assert!(deferred.decided.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_priced_answer_confirms_at_once_an_order_whose_names_the_directory_knows() {
        // Given
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));
        let priced = priced(WAIT, &Arc::default());
        let started = Instant::now();

        // When
        let deferred = service(directory, Placement::deferred(Arc::default()))
            .place_deferred_without_key(
                order_for(account, kettle),
                &TraceContext::new_root(),
                Some(&priced),
                None,
            )
            .await
            .unwrap();

        // Then: no wait at all, the same order priced, with the event of its confirmation.
        assert_eq!(started.elapsed(), Duration::ZERO);
        let (order, event) = deferred.decided.expect("decided");
        assert_eq!(
            (order.id, order.status, order.version),
            (deferred.pending.0.id, OrderStatus::Confirmed, 2)
        );
        assert_eq!(order.total_price_cents, Some(4_998));
        assert_eq!(order.lines[0].product.as_ref().unwrap().name, "Kettle");
        assert_eq!(event.event_type, "shop.order.confirmed.v1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_priced_answer_waits_for_names_the_directory_learns_during_the_wait() {
        // Given: an account and a product the directory hears of 100 ms after the order arrives.
        let directory = InMemoryDirectory::default();
        let changed = Arc::new(Notify::new());
        let (account, kettle) = (Uuid::now_v7(), Uuid::now_v7());
        let learning = {
            let (directory, changed) = (directory.clone(), changed.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                directory.insert_account(account);
                directory.insert_product(kettle, "Kettle", 2_499);
                changed.notify_waiters();
            })
        };
        let started = Instant::now();

        // When
        let deferred = service(directory, Placement::deferred(Arc::default()))
            .place_deferred_without_key(
                order_for(account, kettle),
                &TraceContext::new_root(),
                Some(&priced(WAIT, &changed)),
                None,
            )
            .await
            .unwrap();

        // Then: answered when the directory learnt them, not at the end of the wait.
        learning.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(deferred.decided.expect("decided").0.status, OrderStatus::Confirmed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_priced_answer_leaves_the_order_pending_when_its_names_stay_unknown_past_the_wait() {
        let directory = InMemoryDirectory::default();
        let account = directory.add_account();
        let started = Instant::now();

        let deferred = service(directory, Placement::deferred(Arc::default()))
            .place_deferred_without_key(
                order_for(account, Uuid::now_v7()),
                &TraceContext::new_root(),
                Some(&priced(WAIT, &Arc::default())),
                None,
            )
            .await
            .unwrap();

        assert_eq!(started.elapsed(), WAIT);
        assert!(deferred.decided.is_none(), "not rejected: the minute to wait for the names is not over");
        assert_eq!(deferred.pending.0.status, OrderStatus::Pending);
    }

    #[tokio::test(start_paused = true)]
    async fn a_priced_answer_waits_at_most_half_the_callers_time_and_not_at_all_when_its_wait_is_zero() {
        let directory = InMemoryDirectory::default();
        let account = directory.add_account();
        let kettle = directory.add_product("Kettle", 2_499);
        let service = service(directory, Placement::deferred(Arc::default()));
        let trace = TraceContext::new_root();
        let (never, none) = (Arc::default(), priced(Duration::ZERO, &Arc::default()));

        let started = Instant::now();
        let hurried = service
            .place_deferred_without_key(
                order_for(account, Uuid::now_v7()),
                &trace,
                Some(&priced(WAIT, &never)),
                Some(WAIT / 5),
            )
            .await
            .unwrap();
        let hurried_for = started.elapsed();
        let at_once = service
            .place_deferred_without_key(order_for(account, kettle), &trace, Some(&none), None)
            .await
            .unwrap();

        assert_eq!(hurried_for, WAIT / 10);
        assert!(hurried.decided.is_none());
        assert!(at_once.decided.is_none(), "a zero wait answers pending, even for names the directory knows");
    }
}
