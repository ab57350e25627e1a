//! What the subscriptions of one WebSocket connection share.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The close code of a connection one of whose subscriptions fell too far behind (a private-use code: RFC 6455
/// defines none for a slow reader, and `graphql-transport-ws` uses the 44xx ones). Clients may reconnect and
/// subscribe again: they get the current state first.
pub const SLOW_SUBSCRIBER: u16 = 4008;
/// The close code of connections whose subscriptions missed updates because the gateway's position on the order
/// topic fell out of the log (RFC 6455 "try again later"): subscribing again gets the current state first.
pub const UPDATES_LOST: u16 = 1013;
/// The close code of connections the gateway closes because it is shutting down (RFC 6455 "going away").
pub const GOING_AWAY: u16 = 1001;

/// Why the gateway closes a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

/// One WebSocket connection, as its subscriptions see it. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Connection {
    closing: CancellationToken,
    frame: Arc<Mutex<Option<CloseFrame>>>,
    permits: Arc<Semaphore>,
}

impl Connection {
    /// A connection that may hold `max_subscriptions` at once, closed when `stop` is cancelled (the gateway stops).
    pub fn new(max_subscriptions: usize, stop: &CancellationToken) -> Self {
        Self {
            closing: stop.child_token(),
            frame: Arc::default(),
            permits: Arc::new(Semaphore::new(max_subscriptions)),
        }
    }

    /// A place for one more subscription, if the connection has one free.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Asks the connection to close with `code` and `reason`; the first reason given wins.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut frame = self.frame.lock().expect("not poisoned");
        if frame.is_none() {
            *frame = Some(CloseFrame { code, reason: reason.into() });
        }
        self.closing.cancel();
    }

    /// Resolves once the connection should close, with why: a reason given to [`close`](Self::close), or the
    /// gateway shutting down.
    pub async fn closed(&self) -> CloseFrame {
        self.closing.cancelled().await;
        self.frame
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_else(|| CloseFrame { code: GOING_AWAY, reason: "the gateway is shutting down".into() })
    }
}
