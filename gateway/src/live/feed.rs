//! The order topic, read from its end by this process, and the subscriptions listening to it.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Headers},
};
use shop_events::{
    cloudevents,
    order::{Order, OrderEvent},
    topics,
};
use shop_platform::{
    backoff::Backoff,
    kafka::{KafkaSettings, TracingContext},
    trace,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Connection, LiveSettings, SLOW_SUBSCRIBER, UPDATES_LOST};

/// How often the feed looks for partitions added to the order topic (or the topic appearing at all).
/// The consumer's name in traces: it reads without a group (each gateway its own, from the end of the topic).
const LIVE_UPDATES: &str = "gateway.live-updates";
const PARTITION_REFRESH: Duration = Duration::from_secs(10);
/// How long one metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Every version of one order.
    Order(Uuid),
    /// Every version of every order of one account.
    Account(Uuid),
}

/// Why a subscription cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("live updates are not available: {0}")]
    Unavailable(String),
    #[error("this connection already holds {0} subscriptions, the most it may; end one first")]
    ConnectionFull(usize),
    #[error("the gateway already serves {0} subscriptions, the most it may; retry later")]
    ProcessFull(usize),
}

/// The order topic as this process follows it. Cloning shares it.
#[derive(Debug, Clone)]
pub struct OrderFeed {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    kafka: KafkaSettings,
    settings: LiveSettings,
    listeners: Mutex<Listeners>,
    state: watch::Sender<State>,
    started: AtomicBool,
    stop: CancellationToken,
    permits: Arc<Semaphore>,
}

/// Where the feed is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Starting,
    /// Positioned on every partition: every record appended from now on will be seen.
    Ready,
    /// Not positioned yet, and why.
    Unavailable(String),
}

impl OrderFeed {
    /// A feed reading the order topic of `kafka`, started by the first subscription.
    pub fn new(kafka: KafkaSettings, settings: LiveSettings) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_subscriptions));
        Self {
            shared: Arc::new(Shared {
                kafka,
                settings,
                listeners: Mutex::default(),
                state: watch::Sender::new(State::Starting),
                started: AtomicBool::new(false),
                stop: CancellationToken::new(),
                permits,
            }),
        }
    }

    /// A new WebSocket connection's share of the feed: its cap on subscriptions, closed when the feed stops.
    pub fn connection(&self) -> Connection {
        Connection::new(self.shared.settings.max_subscriptions_per_connection, &self.shared.stop)
    }

    /// Stops following the topic: every subscription ends and every connection closes ("going away").
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    /// Starts listening for `interest` on behalf of a subscription of `connection`: from now on, every version of a
    /// matching order appended to the topic is queued for it. Waits for the feed to be positioned (starting it).
    pub async fn listen(&self, interest: Interest, connection: &Connection) -> Result<Listener, ListenError> {
        let settings = &self.shared.settings;
        let connection_permit = connection
            .admit()
            .ok_or(ListenError::ConnectionFull(settings.max_subscriptions_per_connection))?;
        let process_permit = (self.shared.permits.clone().try_acquire_owned())
            .map_err(|_| ListenError::ProcessFull(settings.max_subscriptions))?;
        self.ready().await?;
        let (sender, updates) = mpsc::channel(settings.subscription_buffer.max(1));
        let id =
            self.shared.listeners.lock().expect("not poisoned").add(interest, sender, connection.clone());
        Ok(Listener {
            id,
            interest,
            updates,
            shared: self.shared.clone(),
            _permits: (connection_permit, process_permit),
        })
    }

    /// Waits until the feed is positioned, starting it if this is the first subscription.
    async fn ready(&self) -> Result<(), ListenError> {
        if !self.shared.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(follow(self.shared.clone()));
        }
        let mut state = self.shared.state.subscribe();
        let timeout = self.shared.settings.start_timeout();
        match tokio::time::timeout(timeout, state.wait_for(|state| *state == State::Ready)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_)) => return Err(ListenError::Unavailable("the gateway is shutting down".into())),
            Err(_elapsed) => {}
        }
        Err(ListenError::Unavailable(match &*state.borrow() {
            State::Unavailable(reason) => format!("cannot read the order topic: {reason}"),
            _ => "the order topic could not be read in time".into(),
        }))
    }
}

/// One subscription's queue of updates, in the order the topic holds them. Dropping it stops the listening.
#[derive(Debug)]
pub struct Listener {
    id: u64,
    interest: Interest,
    updates: mpsc::Receiver<Arc<Order>>,
    shared: Arc<Shared>,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Listener {
    /// The next version appended to the topic of an order this listener is interested in; `None` once the feed
    /// stopped or dropped this listener (its connection is then closing).
    pub async fn next(&mut self) -> Option<Arc<Order>> {
        self.updates.recv().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.listeners.lock().expect("not poisoned").remove(self.interest, self.id);
    }
}

/// The listeners of this process, by what they listen to.
#[derive(Debug, Default)]
struct Listeners {
    next_id: u64,
    by_interest: HashMap<Interest, Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    sender: mpsc::Sender<Arc<Order>>,
    connection: Connection,
}

impl Listeners {
    fn add(&mut self, interest: Interest, sender: mpsc::Sender<Arc<Order>>, connection: Connection) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.by_interest.entry(interest).or_default().push(Slot { id, sender, connection });
        id
    }

    fn remove(&mut self, interest: Interest, id: u64) {
        if let Some(slots) = self.by_interest.get_mut(&interest) {
            slots.retain(|slot| slot.id != id);
            if slots.is_empty() {
                self.by_interest.remove(&interest);
            }
        }
    }

    /// Closes the connection of every listener, with `code` and `reason`, and drops them all.
    fn close_all(&mut self, code: u16, reason: &str) {
        for slot in self.by_interest.drain().flat_map(|(_, slots)| slots) {
            slot.connection.close(code, reason);
        }
    }

    /// Queues `order` for every listener interested in it. A listener whose queue is full is dropped and its
    /// connection closed: the gateway never holds more than a queue's worth for a subscriber that stopped reading.
    fn deliver(&mut self, order: &Arc<Order>, buffer: usize) {
        for interest in [Interest::Order(order.id), Interest::Account(order.account_id)] {
            let Some(slots) = self.by_interest.get_mut(&interest) else { continue };
            slots.retain(|slot| match slot.sender.try_send(order.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(
                        order_id = %order.id,
                        buffer,
                        "A subscriber left too many updates unread; closing its connection."
                    );
                    let reason =
                        format!("too slow: more than {buffer} updates of a subscription waited unread");
                    slot.connection.close(SLOW_SUBSCRIBER, reason);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if slots.is_empty() {
                self.by_interest.remove(&interest);
            }
        }
    }
}

/// Positions a consumer at the end of every partition of the order topic, marks the feed ready, then hands every
/// order version to the listeners until the feed is stopped. Should the consumer's position fall out of the log
/// (it lagged further behind than the topic's retention keeps), versions were lost for every listener: each
/// connection is closed with [`UPDATES_LOST`] (its client subscribes again and gets the current state first), and
/// the feed positions itself again.
async fn follow(shared: Arc<Shared>) {
    let topic = shared.kafka.topic(topics::ORDERS);
    let mut backoff = Backoff::standard();
    loop {
        let (consumer, assigned) = match position(&shared.kafka, &topic).await {
            Ok(positioned) => positioned,
            Err(error) => {
                tracing::warn!(topic, error.message = %error, "Cannot position on the order topic yet; retrying.");
                shared.state.send_replace(State::Unavailable(error.to_string()));
                if !backoff.wait(&shared.stop).await {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        tracing::info!(topic, partitions = assigned.len(), "Following the order topic for subscriptions.");
        shared.state.send_replace(State::Ready);
        match consume(&shared, &consumer, &topic, assigned).await {
            Ended::Stopped => break,
            Ended::PositionLost => {
                shared.state.send_replace(State::Starting);
                shared
                    .listeners
                    .lock()
                    .expect("not poisoned")
                    .close_all(UPDATES_LOST, "live updates were lost; subscribe again");
            }
        }
    }
    // Ending every queue ends every subscription.
    shared.listeners.lock().expect("not poisoned").by_interest.clear();
    shared.state.send_replace(State::Unavailable("the gateway is shutting down".into()));
}

/// Why [`consume`] returned.
enum Ended {
    Stopped,
    PositionLost,
}

/// Hands every order version `consumer` reads to the listeners, until the feed stops or the position is lost.
async fn consume(
    shared: &Shared,
    consumer: &Arc<StreamConsumer<TracingContext>>,
    topic: &str,
    mut assigned: HashSet<i32>,
) -> Ended {
    let mut refresh = tokio::time::interval(PARTITION_REFRESH);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return Ended::Stopped,
            _ = refresh.tick() => {
                if let Err(error) = assign_new_partitions(consumer, topic, &mut assigned).await {
                    tracing::debug!(topic, error.message = %error, "Failed to look for new partitions.");
                }
            }
            message = consumer.recv() => match message {
                Ok(message) => {
                    let _processing = trace::process_message_span(LIVE_UPDATES, &message).entered();
                    if let Some(order) = decode(&message) {
                        let buffer = shared.settings.subscription_buffer;
                        shared.listeners.lock().expect("not poisoned").deliver(&Arc::new(order), buffer);
                    }
                }
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)) => {
                    tracing::warn!(topic, "The order topic no longer holds the records subscriptions were waiting for; closing every subscription and following the topic again.");
                    return Ended::PositionLost;
                }
                Err(error) => tracing::debug!(topic, error.message = %error, "Order topic consumer error."),
            },
        }
    }
}

/// A consumer assigned every partition of `topic` at the offset its next record will get, and those partitions. A
/// topic that does not exist yet is followed from its creation on ([`assign_new_partitions`]).
async fn position(
    kafka: &KafkaSettings,
    topic: &str,
) -> anyhow::Result<(Arc<StreamConsumer<TracingContext>>, HashSet<i32>)> {
    let mut config = kafka.client_config(&[]);
    // Assigned, never subscribed: no group is joined and nothing is committed; the id only names the client.
    config
        .set("group.id", kafka.topic(&format!("shop-gateway-live-{}", Uuid::now_v7())))
        .set("enable.auto.commit", "false")
        // A position that fell out of the log is an error (see `follow`), never a silent jump.
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "10");
    let consumer: Arc<StreamConsumer<TracingContext>> = Arc::new(config.create_with_context(TracingContext)?);
    let ends = {
        let (consumer, topic) = (consumer.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            let mut ends = Vec::new();
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = consumer.fetch_watermarks(&topic, partition.id(), METADATA_TIMEOUT)?;
                ends.push((partition.id(), high));
            }
            Ok::<_, rdkafka::error::KafkaError>(ends)
        })
        .await??
    };
    let mut assignment = TopicPartitionList::new();
    for (partition, end) in &ends {
        assignment.add_partition_offset(topic, *partition, Offset::Offset(*end))?;
    }
    consumer.assign(&assignment)?;
    Ok((consumer, ends.into_iter().map(|(partition, _)| partition).collect()))
}

/// Assigns partitions of `topic` that appeared since the feed was positioned, from their beginning: every record in
/// them was appended after that.
async fn assign_new_partitions(
    consumer: &Arc<StreamConsumer<TracingContext>>,
    topic: &str,
    assigned: &mut HashSet<i32>,
) -> anyhow::Result<()> {
    let partitions = {
        let (consumer, topic) = (consumer.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            Ok::<_, rdkafka::error::KafkaError>(
                metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()).collect::<Vec<_>>(),
            )
        })
        .await??
    };
    let mut new = TopicPartitionList::new();
    for partition in partitions {
        if assigned.insert(partition) {
            new.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    if new.count() > 0 {
        tracing::info!(topic, partitions = new.count(), "Following new partitions of the order topic.");
        consumer.incremental_assign(&new)?;
    }
    Ok(())
}

/// The order a record carries, if it is an order event this gateway understands.
fn decode(message: &BorrowedMessage<'_>) -> Option<Order> {
    let event_type = message
        .headers()?
        .iter()
        .find(|header| header.key == cloudevents::TYPE)
        .and_then(|header| std::str::from_utf8(header.value?).ok())?
        .to_owned();
    match OrderEvent::decode(&event_type, message.payload().unwrap_or_default()) {
        Ok(event) => Some(event.order().clone()),
        Err(error) => {
            tracing::debug!(
                partition = message.partition(),
                offset = message.offset(),
                event_type,
                error.message = %error,
                "Passed over a record of the order topic that is not an order event."
            );
            None
        }
    }
}
