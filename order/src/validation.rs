//! Validation of pending orders: the [`Validator`] takes pending orders and, from its [`Directory`], confirms them
//! (priced) or rejects them with a reason, each transition recorded with its event in one transaction. In
//! `projection` mode the directory is the order service's own projection of accounts and products; in `grpc` mode
//! it is the account and catalog services, for orders left pending by an earlier run in projection mode.
//!
//! "Not yet" is not "no". An order naming an account or product the directory does not hold is rejected only once
//! the directory is known complete past the order's placement — every event committed before it, plus the clock
//! skew allowed between machines, is in the projection (see [`Completeness`](shop_projection::Completeness)) —
//! and no sooner than `ORDER_PROJECTION_WAIT_MS` after it. Until then it stays pending, however long the relay or
//! the projection lags, and the validator says how far behind the directory is. An order a customer placed for an
//! account that is not theirs is judged as one naming an account the directory does not hold (same wait, same
//! reason), so its fate tells the customer nothing about that account.
//!
//! [`PricedAnswer`] applies the same rule in `PostOrder`, before the order is stored: when the directory knows the
//! order's names within a bounded wait (`ORDER_PRICED_ANSWER_WAIT_MS`), the order is stored decided and answered
//! priced; otherwise it is stored pending for the validator. An order is decided by one or the other, never both.
//!
//! Pending orders are taken a batch at a time with `FOR UPDATE SKIP LOCKED`, so several replicas validate side by
//! side and never the same order twice. The directory is asked once for the names of the whole batch
//! ([`Directory::names_of_each`]), and the batch's transitions are written straight into its transaction. Should
//! the database refuse one of them for the data it carries (a price no catalog would hold, stored before the
//! projection checked it), the transaction is rolled back and the batch taken again, each transition then
//! written under its own savepoint: the refused order is rejected with [`REFUSED_REASON`], and never keeps the
//! other orders of the pass from being decided.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::{ServiceError, supervisor::Part, trace};
use sqlx::{PgPool, PgTransaction};
use tokio::{sync::Notify, time::Instant};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    directory::{Directory, Names},
    domain::{Order, OrderError, Verdict},
    metrics::{self, Settlement},
    repository,
};

/// Pending orders taken per transaction.
const BATCH: i64 = 100;

/// How often, at most, the validator says that orders wait for a lagging directory.
const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How the validator decides and paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidationSettings {
    /// How long an order naming something unknown waits before it may be rejected (it also takes the directory
    /// being known complete past the order).
    pub reject_after: Duration,
    /// How far the clocks of the order service and of the databases whose events fill the directory may disagree.
    pub clock_skew: Duration,
    /// How often to look even without a wake-up (orders of other replicas, waits running out).
    pub interval: Duration,
}

impl ValidationSettings {
    /// Orders placed before this may be rejected for naming something unknown, when the directory knows every
    /// name created before `known_through` (less the clock skew).
    fn rejectable_before(&self, known_through: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let skew = chrono::Duration::from_std(self.clock_skew).unwrap_or_default();
        known_through.map(|through| through - skew)
    }
}

/// Moves pending orders to confirmed, awaiting stock, or rejected.
#[derive(Debug)]
pub struct Validator<D> {
    pool: PgPool,
    directory: D,
    settings: ValidationSettings,
    wake: Arc<Notify>,
    last_lag_report: Mutex<Option<Instant>>,
}

/// What one pass knows: when it began, and, once an order needs it, how far the directory is known complete.
#[derive(Debug)]
struct Knowledge {
    now: DateTime<Utc>,
    /// Orders placed before this time may be rejected for naming something unknown. Asked at most once per pass,
    /// and only for an order naming something unknown past its wait: at hundreds of orders a second, passes are
    /// many and short, and almost none needs it.
    rejectable_before: tokio::sync::OnceCell<Option<DateTime<Utc>>>,
}

impl Knowledge {
    /// What a pass beginning now knows.
    fn now() -> Self {
        Self { now: Utc::now(), rejectable_before: tokio::sync::OnceCell::new() }
    }
}

impl<D: Directory> Validator<D> {
    pub fn new(pool: PgPool, directory: D, settings: ValidationSettings, wake: Arc<Notify>) -> Self {
        Self { pool, directory, settings, wake, last_lag_report: Mutex::new(None) }
    }

    /// Validates until `part.stop`, waking on `wake` (an order placed, the projection moved) or every interval. A
    /// pass that fails (the database is away) is logged, reported NOT_SERVING and tried again at the next wake.
    pub async fn run(&self, part: Part) -> anyhow::Result<()> {
        loop {
            match self.validate_pending().await {
                Ok(_) => part.health.serving(),
                Err(error) => {
                    tracing::warn!(error.cause_chain = ?error, "Validating pending orders failed; retrying soon.");
                    part.health.not_serving(format!("validating pending orders failed: {error}"));
                }
            }
            metrics::refresh_backlog(&self.pool).await;
            tokio::select! {
                () = part.stop.cancelled() => return Ok(()),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    /// One pass over every pending order. Returns how many were decided.
    pub async fn validate_pending(&self) -> Result<usize, ServiceError> {
        let knowledge = Knowledge::now();
        let mut after = Uuid::nil();
        let (mut decided, mut held_up) = (0, 0);
        loop {
            let batch = match self.validate_batch(after, &knowledge, Writes::Together).await? {
                // Rare (data stored before the projection checked it): the price of a savepoint per order is paid
                // only then.
                Batch::Refused => self.validate_batch(after, &knowledge, Writes::Isolated).await?,
                batch => batch,
            };
            let Batch::Written(batch) = batch else { break };
            after = batch.last;
            decided += batch.decided;
            held_up += batch.held_up;
            // A batch that is not full ends the pass. Orders come in id order, and an order whose transaction
            // committed late sits behind the cursor: under a steady stream of newer orders a pass that went on
            // to the next batch would never end, and that order would wait for the stream to pause (10 s, at
            // 500 orders/s). The next pass starts from the first pending order again.
            if !batch.full {
                break;
            }
        }
        if held_up > 0 {
            self.report_lag(held_up, &knowledge);
        }
        Ok(decided)
    }

    /// Takes up to [`BATCH`] pending orders after `after`, decides them and writes their decisions as `writes`
    /// says, in one transaction; the settled orders are counted once it commits.
    async fn validate_batch(
        &self,
        after: Uuid,
        knowledge: &Knowledge,
        writes: Writes,
    ) -> Result<Batch, ServiceError> {
        let mut transaction = self.pool.begin().await?;
        let pending = repository::lock_pending_orders(&mut transaction, after, BATCH).await?;
        let Some((last, _)) = pending.last() else { return Ok(Batch::Empty) };
        let (last, full) = (last.id, pending.len() == BATCH as usize);
        let (decided, held_up) = self.decide_batch(pending, knowledge).await?;
        let settled = match writes {
            Writes::Together => match write_together(&mut transaction, &decided).await? {
                Ok(()) => decided.into_iter().map(|decided| (decided.order, decided.span)).collect(),
                Err(refused) => {
                    tracing::debug!(
                        error.message = %refused,
                        "The database refused a decision of the batch for the data it carries; taking the batch \
                         again, each order under its own savepoint."
                    );
                    transaction.rollback().await?;
                    return Ok(Batch::Refused);
                }
            },
            Writes::Isolated => write_each_isolated(&mut transaction, decided).await?,
        };
        for (order, span) in &settled {
            tracing::info!(
                parent: span,
                order_id = %order.id,
                status = order.status.as_str(),
                reason = order.rejection_reason.as_deref(),
                "Validated an order."
            );
        }
        transaction.commit().await?;
        settled.iter().for_each(|(order, _)| Settlement::of(order).record());
        Ok(Batch::Written(Written { last, full, decided: settled.len(), held_up }))
    }

    /// Decides each of `pending` from one look at the directory for them all: the orders to write, and how many
    /// are held up.
    async fn decide_batch(
        &self,
        pending: Vec<(Order, Option<TraceContext>)>,
        knowledge: &Knowledge,
    ) -> Result<(Vec<Decided>, usize), ServiceError> {
        let traces: Vec<TraceContext> = pending
            .iter()
            .map(|(_, placed_under)| {
                placed_under.as_ref().map_or_else(TraceContext::new_root, TraceContext::child)
            })
            .collect();
        let looked_up: Vec<(&Order, &TraceContext)> =
            pending.iter().map(|(order, _)| order).zip(&traces).collect();
        let names = self.directory.names_of_each(&looked_up).await?;
        let (mut decided, mut held_up) = (Vec::new(), 0);
        for (((pending, placed_under), trace), names) in pending.into_iter().zip(traces).zip(names) {
            let mut order = pending.clone();
            match self.decide(&mut order, &names, &trace, knowledge).await? {
                Decision::Transition(event) => {
                    let span = Self::decision_span(&order, placed_under.as_ref());
                    decided.push(Decided { pending, order, event, trace, span });
                }
                Decision::Wait => {}
                Decision::HeldUp => held_up += 1,
            }
        }
        Ok((decided, held_up))
    }

    /// The span in which the validator writes its decision about `order` and the decision's outbox row: in the trace
    /// the order was placed under, so one order's trace runs from its placement to its confirmation.
    fn decision_span(order: &Order, placed_under: Option<&TraceContext>) -> tracing::Span {
        let span = tracing::info_span!(
            "validate order",
            otel.kind = "internal",
            order.status = order.status.as_str(),
        );
        if let Some(placed_under) = placed_under {
            trace::set_parent(&span, placed_under);
        }
        span
    }

    /// Before when orders may be rejected for naming something unknown, from how far the directory is known
    /// complete: asked of the directory the first time in the pass.
    async fn rejectable_before(&self, knowledge: &Knowledge) -> Result<Option<DateTime<Utc>>, ServiceError> {
        let asked = knowledge.rejectable_before.get_or_try_init(|| async {
            Ok::<_, ServiceError>(self.settings.rejectable_before(self.directory.known_through().await?))
        });
        asked.await.copied()
    }

    /// Says, at most every [`LAG_REPORT_INTERVAL`], that orders wait for a directory not known complete past them.
    fn report_lag(&self, held_up: usize, knowledge: &Knowledge) {
        let mut last = self.last_lag_report.lock().expect("not poisoned");
        if last.is_some_and(|at| at.elapsed() < LAG_REPORT_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let rejectable_before = knowledge.rejectable_before.get().copied().flatten();
        let behind_secs =
            rejectable_before.map(|before| (knowledge.now - before).num_milliseconds() as f64 / 1e3);
        tracing::warn!(
            orders = held_up,
            known_complete_through = ?rejectable_before,
            behind_secs,
            "Pending orders name accounts or products the projection does not hold, and it is not known complete \
             past their placement (the relay or the projection lags, or no heartbeat has come): they stay pending \
             rather than be rejected on a guess."
        );
    }

    /// The order's transition and its event, or why it waits, from what the directory holds of its `names`.
    async fn decide(
        &self,
        order: &mut Order,
        names: &Names,
        trace: &TraceContext,
        knowledge: &Knowledge,
    ) -> Result<Decision, ServiceError> {
        let waited = (knowledge.now - order.created_at).to_std().unwrap_or_default();
        let waited_enough = waited >= self.settings.reject_after;
        // How far the directory is complete matters only to a rejection, as in `PricedAnswer::decide`.
        let complete_past_placement = waited_enough
            && !names.knows(order)
            && self.rejectable_before(knowledge).await?.is_some_and(|before| order.created_at < before);
        judge(order, names, waited_enough, complete_past_placement, trace)
    }
}

/// The validator's rule, for the validator and for [`PricedAnswer`]: an order whose names are all known is priced
/// and confirmed, or set to await stock when a product tracks it (or rejected if its total cannot be counted); one
/// naming something unknown waits, and is rejected only once it has `waited_enough` and the directory is
/// `complete_past_placement`.
fn judge(
    order: &mut Order,
    names: &Names,
    waited_enough: bool,
    complete_past_placement: bool,
    trace: &TraceContext,
) -> Result<Decision, ServiceError> {
    let may_reject = waited_enough && complete_past_placement;
    let event = match order.verdict(names.account_known_to(order), &names.products, !may_reject) {
        Verdict::Wait if waited_enough => return Ok(Decision::HeldUp),
        Verdict::Wait => return Ok(Decision::Wait),
        Verdict::Accept => match order.accept(&names.products) {
            Ok(accepted) => accepted,
            Err(OrderError::TotalTooLarge) => {
                order.reject("the order total is too large").map_err(unexpected)?
            }
            Err(error) => return Err(unexpected(error)),
        },
        Verdict::Reject(reason) => order.reject(reason).map_err(unexpected)?,
    }
    .to_envelope(Some(trace));
    Ok(Decision::Transition(Box::new(event)))
}

/// `PostOrder` deciding a new order itself, by the validator's rule, when the directory knows the order's names
/// within a bounded wait: the client is answered the priced order instead of a pending one. The order is not
/// stored yet, so neither the validator nor another replica can see it, let alone decide it: there is one decision
/// and one event, whoever takes it. Beyond the wait the order is stored pending, as without a priced answer.
#[derive(Debug, Clone)]
pub struct PricedAnswer {
    /// The longest `PostOrder` waits for the directory to know an order's account and products.
    pub wait: Duration,
    /// Woken whenever the directory changed (the projection applied a batch).
    pub directory_changed: Arc<Notify>,
    /// The validator's rule: when an order naming something unknown may be rejected.
    pub settings: ValidationSettings,
}

impl PricedAnswer {
    /// Decides `order`, placed and not yet stored, as soon as the directory allows and at the latest at
    /// `deadline`: returns the event of its transition, or `None` (it stays pending, unchanged). Looks once, then
    /// once more each time the directory changes; holds no database connection meanwhile.
    pub async fn decide<D: Directory>(
        &self,
        directory: &D,
        order: &mut Order,
        trace: &TraceContext,
        deadline: Instant,
    ) -> Result<Option<Envelope>, ServiceError> {
        let product_ids = order.product_ids();
        loop {
            // Registered before looking, so that a change made while the look runs still wakes it.
            let changed = self.directory_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let names = directory.names(order.account_id, &product_ids, trace).await?;
            let waited = (Utc::now() - order.created_at).to_std().unwrap_or_default();
            let waited_enough = waited >= self.settings.reject_after;
            // How far the directory is complete matters only to a rejection: asked only then.
            let complete_past_placement = waited_enough
                && !names.knows(order)
                && self
                    .settings
                    .rejectable_before(directory.known_through().await?)
                    .is_some_and(|before| order.created_at < before);
            if let Decision::Transition(event) =
                judge(order, &names, waited_enough, complete_past_placement, trace)?
            {
                return Ok(Some(*event));
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }
}

/// Why an order is rejected when the database refuses its confirmation or rejection for the data it carries.
pub const REFUSED_REASON: &str = "the order cannot be priced from the products' current data";

/// Writes every decision of a batch straight into `transaction`, each in its order's span: no savepoint, no round
/// trip but the writes. Returns the first refusal of the database for an order's data, after which the
/// transaction is aborted (roll it back); any other failure (the database is away) ends the pass.
async fn write_together(
    transaction: &mut PgTransaction<'_>,
    decided: &[Decided],
) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    for Decided { order, event, span, .. } in decided {
        let written = write(transaction, order, event).instrument(span.clone()).await;
        if let Err(refused) = refusal_apart(written)? {
            return Ok(Err(refused));
        }
    }
    Ok(Ok(()))
}

/// Writes each decision under its own savepoint of `transaction`, in its order's span, and rejects with
/// [`REFUSED_REASON`] an order whose decision the database refuses ([`refuse`]). Returns the orders settled,
/// with their spans; any failure other than a refusal ends the pass.
async fn write_each_isolated(
    transaction: &mut PgTransaction<'_>,
    decided: Vec<Decided>,
) -> Result<Vec<(Order, tracing::Span)>, ServiceError> {
    let mut settled = Vec::with_capacity(decided.len());
    for Decided { pending, order, event, trace, span } in decided {
        let written = async {
            Ok::<_, ServiceError>(match write_isolated(transaction, &order, &event).await? {
                Ok(()) => Some(order),
                Err(refused) => refuse(transaction, pending, &refused, &trace).await?,
            })
        }
        .instrument(span.clone())
        .await?;
        settled.extend(written.map(|order| (order, span)));
    }
    Ok(settled)
}

/// Writes `order` and its `event` under a savepoint of `transaction`, so that one order the database refuses
/// for the data it carries (a CHECK, a value it cannot store) leaves the others of the batch to be decided.
/// Returns that refusal, the savepoint rolled back; any other failure (the database is away) ends the pass.
async fn write_isolated(
    transaction: &mut PgTransaction<'_>,
    order: &Order,
    event: &Envelope,
) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    let mut savepoint = sqlx::Acquire::begin(&mut **transaction).await?;
    match refusal_apart(write(&mut savepoint, order, event).await)? {
        Ok(()) => savepoint.commit().await.map(Ok),
        Err(refused) => {
            savepoint.rollback().await?;
            Ok(Err(refused))
        }
    }
}

/// Writes `order`'s transition and its `event`.
async fn write(
    transaction: &mut PgTransaction<'_>,
    order: &Order,
    event: &Envelope,
) -> Result<(), sqlx::Error> {
    repository::update_order(transaction, order).await?;
    outbox::append(transaction, event).await
}

/// Tells the database refusing a write for the data it carries (`Ok(Err(refused))`) from its failing (`Err`).
fn refusal_apart(written: Result<(), sqlx::Error>) -> Result<Result<(), sqlx::Error>, sqlx::Error> {
    match written {
        Err(error) if !shop_projection::is_refused_for_its_data(&error) => Err(error),
        written => Ok(written),
    }
}

/// Rejects `order` (as it was, pending) with [`REFUSED_REASON`] after the database `refused` its decision: no
/// retry would change the data, and an order left pending would be refused again on every pass, never settled.
/// Returns the rejected order, or `None` if that is refused too (then it stays pending, and someone must look).
async fn refuse(
    transaction: &mut PgTransaction<'_>,
    mut order: Order,
    refused: &sqlx::Error,
    trace: &TraceContext,
) -> Result<Option<Order>, ServiceError> {
    tracing::warn!(
        order_id = %order.id,
        error.message = %refused,
        "The database refused an order's validation for the data it carries; rejecting the order."
    );
    let event = order.reject(REFUSED_REASON).map_err(unexpected)?.to_envelope(Some(trace));
    match write_isolated(transaction, &order, &event).await? {
        Ok(()) => Ok(Some(order)),
        Err(error) => {
            tracing::error!(
                order_id = %order.id,
                error.message = %error,
                "The database refused an order's rejection too; the order stays pending."
            );
            Ok(None)
        }
    }
}

/// How a batch's decisions are written.
enum Writes {
    /// Straight into the transaction: the whole batch is refused if the database refuses one order's data.
    Together,
    /// Each under its own savepoint, an order refused for its data rejected with [`REFUSED_REASON`].
    Isolated,
}

/// What became of one batch.
enum Batch {
    /// No pending order was left after the cursor.
    Empty,
    /// The database refused one decision for its data, and the batch's transaction was rolled back: nothing was
    /// written. Only when its writes were [`Writes::Together`].
    Refused,
    Written(Written),
}

/// A batch written and committed.
struct Written {
    /// The id of the batch's last order, where the next batch starts.
    last: Uuid,
    /// Whether the batch took as many orders as it could.
    full: bool,
    /// How many of its orders were decided.
    decided: usize,
    /// How many of its orders wait for a directory not known complete past them.
    held_up: usize,
}

/// A pending order decided, to be written.
struct Decided {
    /// The order as it was taken, pending: what is rejected if the database refuses the decision.
    pending: Order,
    /// The order decided.
    order: Order,
    event: Box<Envelope>,
    trace: TraceContext,
    /// The span the decision is written in ([`Validator::decision_span`]).
    span: tracing::Span,
}

/// What becomes of a pending order in one pass.
enum Decision {
    /// Confirmed or rejected, with the event that says so.
    Transition(Box<Envelope>),
    /// Something is unknown and the order has not waited long enough to be rejected.
    Wait,
    /// Something is unknown, the order has waited long enough, but the directory is not known complete past it.
    HeldUp,
}

fn unexpected(error: OrderError) -> ServiceError {
    ServiceError::Unexpected(anyhow::Error::new(error))
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::*;
    use crate::{
        directory::{KnownAccount, fake::InMemoryDirectory},
        domain::{CatalogProduct, NewOrder, OrderStatus, PlacedBy},
    };

    const WAIT: Duration = Duration::from_secs(10);

    fn validator<D: Directory>(directory: D) -> Validator<D> {
        // Deciding touches only the directory; the pool never connects.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("a valid URL");
        let settings = ValidationSettings { reject_after: WAIT, clock_skew: Duration::ZERO, interval: WAIT };
        Validator::new(pool, directory, settings, Arc::default())
    }

    fn pending(account: Uuid, product: Uuid, placed_ago: Duration) -> Order {
        let (mut order, _) =
            Order::place(NewOrder::parse(&account.to_string(), [(&*product.to_string(), 1)]).unwrap());
        order.created_at -= chrono::Duration::from_std(placed_ago).unwrap();
        order
    }

    async fn decide(validator: &Validator<InMemoryDirectory>, order: &mut Order) -> Decision {
        let (knowledge, trace) = (Knowledge::now(), TraceContext::new_root());
        let names = validator.directory.names(order.account_id, &order.product_ids(), &trace).await.unwrap();
        validator.decide(order, &names, &trace, &knowledge).await.unwrap()
    }

    /// Counts the looks taken at the directory it wraps (a look at a whole batch is one).
    #[derive(Debug, Default)]
    struct CountingDirectory {
        inner: InMemoryDirectory,
        looks: AtomicUsize,
    }

    impl CountingDirectory {
        fn looked(&self) {
            self.looks.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Directory for CountingDirectory {
        async fn account(
            &self,
            id: Uuid,
            trace: &TraceContext,
        ) -> Result<Option<KnownAccount>, ServiceError> {
            self.looked();
            self.inner.account(id, trace).await
        }

        async fn products(
            &self,
            ids: &[Uuid],
            trace: &TraceContext,
        ) -> Result<HashMap<Uuid, CatalogProduct>, ServiceError> {
            self.looked();
            self.inner.products(ids, trace).await
        }

        async fn known_through(&self) -> Result<Option<DateTime<Utc>>, ServiceError> {
            self.inner.known_through().await
        }

        async fn names(
            &self,
            account_id: Uuid,
            product_ids: &[Uuid],
            trace: &TraceContext,
        ) -> Result<Names, ServiceError> {
            self.looked();
            self.inner.names(account_id, product_ids, trace).await
        }

        async fn names_of_each(
            &self,
            orders: &[(&Order, &TraceContext)],
        ) -> Result<Vec<Names>, ServiceError> {
            self.looked();
            self.inner.names_of_each(orders).await
        }
    }

    #[tokio::test]
    async fn a_batch_of_orders_is_decided_from_one_look_at_the_directory() {
        // Arrange: two orders whose names the directory holds, and one for an account it does not.
        let directory = CountingDirectory::default();
        let (account, kettle) = (directory.inner.add_account(), directory.inner.add_product("Kettle", 2_499));
        let validator = validator(directory);
        let batch = Vec::from(
            [account, Uuid::now_v7(), account]
                .map(|account| (pending(account, kettle, Duration::ZERO), None)),
        );

        // Act
        let (decided, held_up) = validator.decide_batch(batch, &Knowledge::now()).await.unwrap();

        // Assert: the known ones confirmed, the other waiting, after one look.
        assert_eq!(validator.directory.looks.load(Ordering::Relaxed), 1);
        let statuses: Vec<_> =
            decided.iter().map(|decided| (decided.order.account_id, decided.order.status)).collect();
        assert_eq!(statuses, [(account, OrderStatus::Confirmed), (account, OrderStatus::Confirmed)]);
        assert_eq!(held_up, 0);
    }

    #[tokio::test]
    async fn an_order_whose_names_are_all_known_is_confirmed_at_once() {
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_product("Kettle", 2_499));
        let validator = validator(directory);
        let mut order = pending(account, kettle, Duration::ZERO);

        let decision = decide(&validator, &mut order).await;

        assert!(matches!(decision, Decision::Transition(_)));
        assert_eq!(order.status, OrderStatus::Confirmed);
    }

    #[tokio::test]
    async fn an_order_naming_a_product_that_tracks_its_stock_is_priced_and_awaits_stock() {
        let directory = InMemoryDirectory::default();
        let (account, kettle) = (directory.add_account(), directory.add_stocked_product("Kettle", 2_499));
        let validator = validator(directory);
        let mut order = pending(account, kettle, Duration::ZERO);

        let Decision::Transition(event) = decide(&validator, &mut order).await else { panic!("not decided") };

        assert_eq!(event.event_type, "shop.order.awaiting_stock.v1");
        assert_eq!((order.status, order.total_price_cents), (OrderStatus::AwaitingStock, Some(2_499)));
    }

    #[tokio::test]
    async fn a_customers_order_for_anothers_account_is_judged_exactly_as_one_for_an_unknown_account() {
        // Given: Ada's account and a kettle; Grace's order for Ada's account, and Ada's own.
        let directory = InMemoryDirectory::default();
        let (adas, kettle) =
            (directory.add_account_owned_by("auth0|ada"), directory.add_product("Kettle", 2_499));
        let validator = validator(directory);
        let placed_by = |subject: &str, placed_ago| {
            let mut order = pending(adas, kettle, placed_ago);
            order.placed_by = PlacedBy::Customer(subject.into());
            order
        };

        // When / Then: too early to conclude, as for an unknown account.
        assert!(matches!(
            decide(&validator, &mut placed_by("auth0|grace", Duration::ZERO)).await,
            Decision::Wait
        ));

        // Waited, the directory complete past it: rejected, for the reason an unknown account gets.
        *validator.directory.known_through.lock().unwrap() = Some(Utc::now());
        let mut graces = placed_by("auth0|grace", WAIT * 2);
        assert!(matches!(decide(&validator, &mut graces).await, Decision::Transition(_)));
        assert_eq!(graces.status, OrderStatus::Rejected);
        assert_eq!(graces.rejection_reason, Some(format!("unknown account {adas}")));

        // The owner's own order is confirmed at once.
        let mut adas_own = placed_by("auth0|ada", Duration::ZERO);
        assert!(matches!(decide(&validator, &mut adas_own).await, Decision::Transition(_)));
        assert_eq!(adas_own.status, OrderStatus::Confirmed);
    }

    #[tokio::test]
    async fn a_priced_answer_rejects_only_what_the_validator_would_reject() {
        // Given: a ghost account, with no time to wait before rejecting.
        let directory = InMemoryDirectory::default();
        let kettle = directory.add_product("Kettle", 2_499);
        let settings =
            ValidationSettings { reject_after: Duration::ZERO, ..validator(directory.clone()).settings };
        let priced =
            PricedAnswer { wait: Duration::from_millis(50), directory_changed: Arc::default(), settings };
        let ghost = Uuid::now_v7();
        let answer = |mut order: Order| {
            let (priced, directory) = (priced.clone(), directory.clone());
            async move {
                let deadline = Instant::now() + priced.wait;
                let event =
                    priced.decide(&directory, &mut order, &TraceContext::new_root(), deadline).await.unwrap();
                (order, event)
            }
        };

        // When / Then: the directory not known complete past the order, it stays pending.
        let (held_up, none) = answer(pending(ghost, kettle, Duration::ZERO)).await;
        assert_eq!((held_up.status, none), (OrderStatus::Pending, None));

        // Complete past it: rejected, with the reason and its event.
        *directory.known_through.lock().unwrap() = Some(Utc::now() + chrono::Duration::seconds(1));
        let (rejected, event) = answer(pending(ghost, kettle, Duration::ZERO)).await;
        assert_eq!(rejected.rejection_reason, Some(format!("unknown account {ghost}")));
        assert_eq!(event.unwrap().event_type, "shop.order.rejected.v1");
    }

    #[tokio::test]
    async fn an_unknown_name_waits_until_the_wait_is_over_and_the_directory_is_complete_past_the_order() {
        // Given: an account the directory does not hold.
        let directory = InMemoryDirectory::default();
        let kettle = directory.add_product("Kettle", 2_499);
        let validator = validator(directory);
        let ghost = Uuid::now_v7();

        // When / Then: too early to conclude.
        let mut fresh = pending(ghost, kettle, Duration::ZERO);
        assert!(matches!(decide(&validator, &mut fresh).await, Decision::Wait));

        // Waited long enough, but the directory is not known complete: held up, not rejected.
        let mut waited = pending(ghost, kettle, WAIT * 2);
        assert!(matches!(decide(&validator, &mut waited).await, Decision::HeldUp));
        *validator.directory.known_through.lock().unwrap() =
            Some(waited.created_at - chrono::Duration::seconds(1));
        assert!(matches!(decide(&validator, &mut waited).await, Decision::HeldUp), "complete only before it");

        // Complete past the order: rejected, with the reason.
        *validator.directory.known_through.lock().unwrap() = Some(Utc::now());
        assert!(matches!(decide(&validator, &mut waited).await, Decision::Transition(_)));
        assert_eq!(waited.status, OrderStatus::Rejected);
        assert_eq!(waited.rejection_reason, Some(format!("unknown account {ghost}")));
    }
}
