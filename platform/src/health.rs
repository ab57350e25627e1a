//! The health of a process's parts. Each long-running part (a projection consumer, the order validator, the relay
//! of one outbox) says whether it is doing its job; gRPC health checking ([`grpc::serve`](crate::grpc::serve)) and
//! the relay's HTTP readiness report it.

use std::{collections::BTreeMap, sync::Arc};

use tokio::sync::watch;

/// How one part is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartStatus {
    Serving,
    /// Not doing its job, and why (starting, waiting for Kafka, restarting after a failure…).
    NotServing(String),
}

impl PartStatus {
    pub fn is_serving(&self) -> bool {
        matches!(self, Self::Serving)
    }
}

/// The parts of one process and how each is doing. Cloning shares the same parts.
#[derive(Debug, Clone)]
pub struct Health {
    parts: Arc<watch::Sender<BTreeMap<String, PartStatus>>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { parts: Arc::new(watch::Sender::new(BTreeMap::new())) }
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers part `name`, not serving until it says otherwise.
    pub fn part(&self, name: impl Into<String>) -> PartHealth {
        let part = PartHealth { parts: self.parts.clone(), name: name.into() };
        part.set(PartStatus::NotServing("starting".into()));
        part
    }

    /// Every part and its status, by name.
    pub fn statuses(&self) -> BTreeMap<String, PartStatus> {
        self.parts.borrow().clone()
    }

    /// Whether every part is serving.
    pub fn is_serving(&self) -> bool {
        self.parts.borrow().values().all(PartStatus::is_serving)
    }

    /// Changes as they happen.
    pub fn watch(&self) -> watch::Receiver<BTreeMap<String, PartStatus>> {
        self.parts.subscribe()
    }
}

/// One part's handle on its status.
#[derive(Debug, Clone)]
pub struct PartHealth {
    parts: Arc<watch::Sender<BTreeMap<String, PartStatus>>>,
    name: String,
}

impl PartHealth {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn serving(&self) {
        self.set(PartStatus::Serving);
    }

    pub fn not_serving(&self, reason: impl Into<String>) {
        self.set(PartStatus::NotServing(reason.into()));
    }

    pub fn status(&self) -> Option<PartStatus> {
        self.parts.borrow().get(&self.name).cloned()
    }

    fn set(&self, status: PartStatus) {
        // Watchers wake only on a change, not on every repeated "still serving".
        self.parts.send_if_modified(|parts| {
            let previous = parts.insert(self.name.clone(), status.clone());
            previous.as_ref() != Some(&status)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_serves_when_every_part_does() {
        let health = Health::new();
        let consumer = health.part("consumer");
        let validator = health.part("validator");
        assert!(!health.is_serving(), "parts start not serving");

        consumer.serving();
        validator.serving();
        assert!(health.is_serving());

        consumer.not_serving("Kafka is unreachable");
        assert!(!health.is_serving());
        assert_eq!(health.statuses()["consumer"], PartStatus::NotServing("Kafka is unreachable".into()));
    }

    #[test]
    fn watchers_hear_of_changes_only() {
        let health = Health::new();
        let part = health.part("consumer");
        let mut changes = health.watch();
        changes.mark_unchanged();

        part.not_serving("starting");
        assert!(!changes.has_changed().unwrap());
        part.serving();
        assert!(changes.has_changed().unwrap());
    }
}
