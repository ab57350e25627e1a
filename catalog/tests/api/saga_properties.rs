//! The stock invariant under random interleavings of the order saga, against the catalog's real service and
//! database: orders awaiting stock, reservations delivered (and delivered again), answers, cancellations,
//! timeouts, releases delivered in any order (and again), restocks and write-offs. After every step:
//!
//! - every tracked product balances: `received = available + held`, and nothing is negative;
//! - a confirmed order holds its lines; an order whose release was delivered holds nothing, ever again;
//! - what the catalog received is exactly the initial stock plus every adjustment it accepted.
//!
//! The order's side is the model (its transitions are the order service's: see `order/src/domain/order.rs`); the
//! catalog is the real thing. proptest shrinks a failing interleaving to the shortest one that still fails.

use std::collections::HashMap;

use proptest::prelude::*;
use shop_catalog::{
    domain::{ProductDetails, ReservationStatus, Stock, StockDelta, StockRequest},
    service::CatalogService,
};
use shop_events::TraceContext;
use shop_testkit::TestDatabase;
use uuid::Uuid;

use crate::helpers::{assert_every_ledger_balances, ledger};

const ORDERS: usize = 5;
/// Two products track their stock, the third does not.
const PRODUCTS: usize = 3;

/// One step of the saga, by order and product index.
#[derive(Debug, Clone)]
enum Step {
    /// The catalog consumes the order's `awaiting_stock` event (again, if it did already) and the order settles
    /// the answer if it still awaits stock.
    Reserve(usize),
    /// The customer cancels the order, or its stock deadline passes: if it awaits stock, it ends owing a release.
    Cancel(usize),
    TimeOut(usize),
    /// The catalog consumes the order's final event, or `ReleaseStock` arrives (again, or before any reservation).
    Release(usize),
    /// Staff restock or write off.
    Adjust(usize, i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..ORDERS).prop_map(Step::Reserve),
        1 => (0..ORDERS).prop_map(Step::Cancel),
        1 => (0..ORDERS).prop_map(Step::TimeOut),
        2 => (0..ORDERS).prop_map(Step::Release),
        1 => (0..PRODUCTS, prop_oneof![-3_i64..0, 1_i64..4]).prop_map(|(p, d)| Step::Adjust(p, d)),
    ]
}

/// Each order's lines: one to three products, one to three units each.
fn orders() -> impl Strategy<Value = Vec<Vec<(usize, u32)>>> {
    proptest::collection::vec(
        proptest::sample::subsequence((0..PRODUCTS).collect::<Vec<_>>(), 1..=PRODUCTS)
            .prop_flat_map(|products| {
                let quantities = proptest::collection::vec(1_u32..=3, products.len());
                (Just(products), quantities)
            })
            .prop_map(|(products, quantities)| products.into_iter().zip(quantities).collect()),
        ORDERS,
    )
}

/// The order service's view of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderState {
    AwaitingStock,
    Confirmed,
    /// Rejected for stock: nothing was held.
    OutOfStock,
    /// Cancelled or timed out while awaiting stock: a release is owed until one is delivered.
    Ended {
        release_owed: bool,
    },
}

/// The world: the real catalog, the modelled orders.
struct Saga {
    catalog: CatalogService,
    database: TestDatabase,
    products: Vec<Uuid>,
    received: HashMap<Uuid, i64>,
    orders: Vec<(Uuid, StockRequest, OrderState)>,
    trace: TraceContext,
}

impl Saga {
    async fn start(initial: [i64; 2], order_lines: &[Vec<(usize, u32)>]) -> Self {
        let database = TestDatabase::create().await;
        let settings = shop_catalog::config::Settings {
            database_url: database.url.parse().unwrap(),
            ..Default::default()
        };
        let pool = shop_catalog::database::connect(&settings).await.unwrap();
        let catalog = CatalogService::new(pool, None);
        let trace = TraceContext::new_root();
        let mut products = Vec::new();
        let mut received = HashMap::new();
        for index in 0..PRODUCTS {
            let details = ProductDetails::parse(&format!("Product {index}"), "", 100).unwrap();
            let stock = initial.get(index).map(|units| Stock::parse("stock", *units).unwrap());
            let product = catalog.create_product(details, stock, &trace).await.unwrap();
            if let Some(units) = initial.get(index) {
                received.insert(product.id, *units);
            }
            products.push(product.id);
        }
        let orders = order_lines
            .iter()
            .map(|lines| {
                let request = StockRequest::merging(lines.iter().map(|(p, q)| (products[*p], *q))).unwrap();
                (Uuid::now_v7(), request, OrderState::AwaitingStock)
            })
            .collect();
        Self { catalog, database, products, received, orders, trace }
    }

    async fn apply(&mut self, step: &Step) {
        match *step {
            Step::Reserve(o) => {
                let (id, request, state) = &self.orders[o];
                let reservation = self.catalog.reserve_stock(*id, request, &self.trace).await.unwrap();
                if *state == OrderState::AwaitingStock {
                    self.orders[o].2 = match reservation.status {
                        ReservationStatus::Reserved => OrderState::Confirmed,
                        ReservationStatus::Rejected => OrderState::OutOfStock,
                        // Released before it was reserved (a release that overtook it): holds nothing.
                        ReservationStatus::Released => OrderState::Ended { release_owed: false },
                    };
                }
            }
            Step::Cancel(o) | Step::TimeOut(o) => {
                if self.orders[o].2 == OrderState::AwaitingStock {
                    self.orders[o].2 = OrderState::Ended { release_owed: true };
                }
            }
            Step::Release(o) => {
                // The order service never asks to release a confirmed order's stock.
                if self.orders[o].2 == OrderState::Confirmed {
                    return;
                }
                let id = self.orders[o].0;
                let reservation = self.catalog.release_stock(id, &self.trace).await.unwrap();
                assert_eq!(reservation.status, ReservationStatus::Released);
                if let OrderState::Ended { .. } = self.orders[o].2 {
                    self.orders[o].2 = OrderState::Ended { release_owed: false };
                }
            }
            Step::Adjust(p, delta) => {
                let id = self.products[p];
                let adjusted = self
                    .catalog
                    .adjust_stock(id, StockDelta::parse("delta", delta).unwrap(), None, &self.trace)
                    .await;
                match (adjusted, self.received.get_mut(&id)) {
                    (Ok(_), Some(received)) => *received += delta,
                    (Ok(_), None) => panic!("an untracked product's stock was adjusted"),
                    // Refused: below zero, or untracked. Nothing moved.
                    (Err(_), _) => {}
                }
            }
        }
    }

    /// Units each order holds now, per the catalog.
    async fn held(&self, order: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(sum(line.quantity), 0)::bigint FROM stock_reservation_lines AS line
             JOIN stock_reservations AS reservation USING (order_id)
             WHERE reservation.order_id = $1 AND reservation.held",
        )
        .bind(order)
        .fetch_one(&self.database.pool)
        .await
        .unwrap()
    }

    async fn check(&self, after: &Step) {
        let pool = &self.database.pool;
        assert_every_ledger_balances(pool).await;
        for (id, received) in &self.received {
            let books = ledger(pool, &id.to_string()).await;
            assert_eq!(books.received, *received, "after {after:?}: what was received");
            assert!(books.available >= 0 && books.held >= 0, "after {after:?}: {books:?}");
        }
        for (id, request, state) in &self.orders {
            let held = self.held(*id).await;
            let asked: i64 = request.lines().iter().map(|line| i64::from(line.quantity)).sum();
            match state {
                OrderState::Confirmed => {
                    assert_eq!(held, asked, "after {after:?}: a confirmed order holds its lines")
                }
                OrderState::OutOfStock | OrderState::Ended { release_owed: false } => {
                    assert_eq!(held, 0, "after {after:?}: an order that ended holds nothing")
                }
                // The catalog may or may not have reserved yet.
                OrderState::AwaitingStock | OrderState::Ended { release_owed: true } => {
                    assert!(held == 0 || held == asked, "after {after:?}: all or none")
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_stock_invariant_holds_after_every_step_of_any_interleaving(
        initial in [0_i64..6, 0_i64..6],
        order_lines in orders(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut saga = Saga::start(initial, &order_lines).await;
            for step in &steps {
                saga.apply(step).await;
                saga.check(step).await;
            }
            // Every release owed delivered at last: everything not confirmed is back in stock.
            for o in 0..ORDERS {
                if let OrderState::Ended { release_owed: true } = saga.orders[o].2 {
                    saga.apply(&Step::Release(o)).await;
                }
            }
            saga.check(&Step::Release(usize::MAX)).await;
        });
    }
}
