//! Placement to confirmation in projection mode at a steady rate: orders sent through the gateway on a fixed
//! schedule (open loop: an order is sent when it is due, whether or not the earlier ones were answered), and, for
//! each, the time from `createOrder`'s answer to the order's `shop.order.confirmed.v1` record read from the orders
//! topic, and to its confirmed state read in the order database.
//!
//! Two ways, each on a system of its own started as [`crate::priced`] starts it: orders answered pending and
//! confirmed by the validator from the projection (`ORDER_PRICED_ANSWER_WAIT_MS=0`), and orders confirmed by
//! `createOrder` itself (the priced answer, by default): there the database is confirmed before the answer, and
//! the record is the relay's hop alone.
//!
//! Both observers are single readers, so that observing does not load the system with a query per order: a
//! consumer of the orders topic assigned at its end (its own `fetch.wait.max.ms` short, since the embedded
//! broker answers an empty fetch only once it has passed), and one query for every order not yet seen confirmed
//! after each commit notification of the order database's outbox.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use serde_json::{Value, json};
use shop_events::{cloudevents, topics};
use shop_order::config::DEFAULT_PRICED_ANSWER_WAIT_MS;
use shop_testkit::kafka::TestBroker;
use sqlx::postgres::PgListener;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{priced::System, stats::Latencies};

const ORDER: &str = "mutation($order: OrderInput!) { createOrder(order: $order) { id status } }";
const CONFIRMED: &str = "shop.order.confirmed.v1";
/// How long the observers keep looking after the last order was answered.
const SETTLE: Duration = Duration::from_secs(10);
/// How long orders are sent at the rate before the measured ones: the pools of every process grow to what the
/// rate needs (a connection opened under the first orders costs them tens of milliseconds each).
pub const WARM_UP: Duration = Duration::from_secs(2);

/// Placement to confirmation of one way, at the steady rate.
#[derive(Debug)]
pub struct Way {
    pub name: &'static str,
    /// Orders answered.
    pub orders: usize,
    /// Orders answered per second.
    pub achieved: f64,
    /// `createOrder` alone, from when it was due (so a late send counts).
    pub answered: Latencies,
    /// From the answer to the confirmation's record on the orders topic.
    pub to_topic: Latencies,
    /// From the answer to the order read confirmed in the database; not measured for the priced answer, which
    /// commits the confirmation before it answers.
    pub to_database: Option<Latencies>,
    /// Orders whose confirmation was not seen on the topic within [`SETTLE`] of the last answer.
    pub unconfirmed: usize,
}

#[derive(Debug)]
pub struct SteadyConfirmation {
    pub rate: u32,
    pub duration: Duration,
    pub ways: Vec<Way>,
}

/// Measures both ways at `rate` orders/s for `duration` each.
pub async fn confirmation(
    broker: &TestBroker,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<SteadyConfirmation> {
    let mut ways = Vec::new();
    for (name, priced_answer_wait_ms) in [
        ("answered pending, confirmed by the validator (ORDER_PRICED_ANSWER_WAIT_MS=0)", 0),
        ("confirmed by createOrder itself (the priced answer, by default)", DEFAULT_PRICED_ANSWER_WAIT_MS),
    ] {
        let system = System::start_with(broker, priced_answer_wait_ms).await?;
        let way = steady(broker, &system, name, priced_answer_wait_ms, rate, duration).await;
        system.stop().await?;
        ways.push(way?);
    }
    Ok(SteadyConfirmation { rate, duration, ways })
}

/// When each order was answered, and when it was seen confirmed on the topic and in the database.
#[derive(Debug, Default)]
struct Timeline {
    answered: HashMap<Uuid, Instant>,
    on_topic: HashMap<Uuid, Instant>,
    in_database: HashMap<Uuid, Instant>,
    /// Answered, not yet read confirmed in the database.
    awaiting_database: HashSet<Uuid>,
}

async fn steady(
    broker: &TestBroker,
    system: &System,
    name: &'static str,
    priced_answer_wait_ms: u64,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Way> {
    let graphql = format!("http://{}/graphql", system.gateway.address);
    let http = reqwest::Client::new();
    let (accounts, products) = system.customers_and_products(20, 10).await?;
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let stop = CancellationToken::new();
    let topic = watch_topic(broker, &system.topic(topics::ORDERS), timeline.clone(), stop.clone()).await?;
    let database = watch_database(system, timeline.clone(), stop.clone()).await?;
    // One order first, not measured: the validator, the relay and the observers are all going.
    let first = place(&http, &graphql, &accounts[0], &products[0]).await?;
    wait_until(&timeline, SETTLE, |timeline| timeline.on_topic.contains_key(&first)).await;
    *timeline.lock().unwrap() = Timeline::default();

    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut schedule = tokio::time::interval(interval);
    schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let measured_from = Instant::now() + WARM_UP;
    let mut sent = Vec::new();
    for n in 0.. {
        let due = schedule.tick().await.into_std();
        if due >= measured_from + duration {
            break;
        }
        let measured = due >= measured_from;
        let (http, graphql, timeline) = (http.clone(), graphql.clone(), timeline.clone());
        let (account, product) = (accounts[n % accounts.len()].clone(), products[n % products.len()].clone());
        sent.push(tokio::spawn(async move {
            let id = place(&http, &graphql, &account, &product).await?;
            let answered = Instant::now();
            if measured {
                let mut timeline = timeline.lock().unwrap();
                timeline.answered.insert(id, answered);
                timeline.awaiting_database.insert(id);
            }
            anyhow::Ok(measured.then_some((id, answered - due)))
        }));
    }
    let mut answered = Vec::new();
    for order in futures::future::join_all(sent).await {
        answered.extend(order??);
    }
    // Until the last measured order was answered.
    let elapsed = measured_from.elapsed();
    let ids: HashSet<Uuid> = answered.iter().map(|(id, _)| *id).collect();
    wait_until(&timeline, SETTLE, |timeline| ids.iter().all(|id| timeline.on_topic.contains_key(id))).await;
    stop.cancel();
    topic.await??;
    database.await??;

    let timeline = timeline.lock().unwrap();
    let after_answer = |seen: &HashMap<Uuid, Instant>| {
        Latencies::of(
            ids.iter()
                .filter_map(|id| Some(seen.get(id)?.saturating_duration_since(timeline.answered[id])))
                .collect(),
        )
    };
    Ok(Way {
        name,
        orders: answered.len(),
        achieved: answered.len() as f64 / elapsed.as_secs_f64(),
        answered: Latencies::of(answered.iter().map(|(_, latency)| *latency).collect()),
        to_topic: after_answer(&timeline.on_topic),
        to_database: (priced_answer_wait_ms == 0).then(|| after_answer(&timeline.in_database)),
        unconfirmed: ids.iter().filter(|id| !timeline.on_topic.contains_key(id)).count(),
    })
}

/// Places one unit of `product` for `account`; its id. Answered pending or confirmed.
async fn place(http: &reqwest::Client, graphql: &str, account: &str, product: &str) -> anyhow::Result<Uuid> {
    let order = json!({ "accountId": account, "products": [{ "id": product, "quantity": 1 }] });
    let body = json!({ "query": ORDER, "variables": { "order": order } });
    let response: Value = http.post(graphql).json(&body).send().await?.json().await?;
    let order = &response["data"]["createOrder"];
    anyhow::ensure!(order["status"] == "PENDING" || order["status"] == "CONFIRMED", "{response}");
    Ok(order["id"].as_str().ok_or_else(|| anyhow::anyhow!("{response}"))?.parse()?)
}

async fn wait_until(timeline: &Mutex<Timeline>, at_most: Duration, done: impl Fn(&Timeline) -> bool) {
    let deadline = Instant::now() + at_most;
    while !done(&timeline.lock().unwrap()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Notes when each order's confirmation is read from `topic`, read from its end.
async fn watch_topic(
    broker: &TestBroker,
    topic: &str,
    timeline: Arc<Mutex<Timeline>>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", format!("bench-confirmation-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
        assignment.add_partition_offset(topic, partition.id(), Offset::End)?;
    }
    consumer.assign(&assignment)?;
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = consumer.recv() => message?,
            };
            let confirmed = message.headers().is_some_and(|headers| {
                headers.iter().any(|h| h.key == cloudevents::TYPE && h.value == Some(CONFIRMED.as_bytes()))
            });
            let id = message.key().and_then(|key| std::str::from_utf8(key).ok()?.parse::<Uuid>().ok());
            if let (true, Some(id)) = (confirmed, id) {
                timeline.lock().unwrap().on_topic.entry(id).or_insert_with(Instant::now);
            }
        }
    }))
}

/// Notes when each answered order is first read confirmed in the order database, reading the orders not yet seen
/// confirmed after every commit notification of its outbox.
async fn watch_database(
    system: &System,
    timeline: Arc<Mutex<Timeline>>,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let pool = system.order_database.pool.clone();
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(shop_outbox::NOTIFY_CHANNEL).await?;
    let (commits, mut committed) = watch::channel(());
    let listening = tokio::spawn(async move {
        while listener.try_recv().await.is_ok() {
            commits.send_replace(());
        }
    });
    Ok(tokio::spawn(async move {
        loop {
            committed.mark_unchanged();
            let waiting: Vec<Uuid> = timeline.lock().unwrap().awaiting_database.iter().copied().collect();
            if !waiting.is_empty() {
                let confirmed: Vec<Uuid> =
                    sqlx::query_scalar("SELECT id FROM orders WHERE id = ANY($1) AND status = 'confirmed'")
                        .bind(&waiting)
                        .fetch_all(&pool)
                        .await?;
                let now = Instant::now();
                let mut timeline = timeline.lock().unwrap();
                for id in confirmed {
                    timeline.awaiting_database.remove(&id);
                    timeline.in_database.insert(id, now);
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                _ = committed.changed() => {}
                // Orders answered since the last read, whose confirmation committed before they were noted.
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        listening.abort();
        Ok(())
    }))
}
