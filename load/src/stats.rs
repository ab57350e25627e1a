//! What the run has measured so far: per operation, a latency histogram (every operation, failed ones included:
//! a failure is an answer too, and a timeout is the slowest of them) and failures counted by code.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;

use crate::{client::Failure, mix::Operation};

/// The longest latency told apart: an hour, in microseconds. Longer ones are recorded as an hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Significant figures kept: 1 µs in 1 ms, 1 ms in 1 s.
const SIGNIFICANT_FIGURES: u8 = 3;

/// The measurements of one operation (or of all).
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// Microseconds.
    pub(crate) latencies: Histogram<u64>,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        let latencies = Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_FIGURES)
            .expect("1 µs to 1 h at 3 significant figures is a valid histogram");
        Self { latencies, errors: BTreeMap::new() }
    }
}

impl Tally {
    pub(crate) fn record(&mut self, latency: Duration, outcome: &Result<(), Failure>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies.saturating_record(micros.max(1));
        if let Err(failure) = outcome {
            *self.errors.entry(failure.0.clone()).or_default() += 1;
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.latencies.len()
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at `quantile` (0 to 1).
    pub(crate) fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latencies.value_at_quantile(quantile))
    }
}

/// Every operation's tally, and the run's, shared by the tasks that send operations.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    tallies: Mutex<Tallies>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Tallies {
    pub(crate) operations: BTreeMap<Operation, Tally>,
    pub(crate) all: Tally,
}

impl Recorder {
    pub(crate) fn record(&self, operation: Operation, latency: Duration, outcome: &Result<(), Failure>) {
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        tallies.operations.entry(operation).or_default().record(latency, outcome);
        tallies.all.record(latency, outcome);
    }

    /// What every operation together measured so far: count, errors, p50, p99.
    pub(crate) fn overall(&self) -> (u64, u64, Duration, Duration) {
        let tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        let all = &tallies.all;
        (all.count(), all.error_count(), all.quantile(0.50), all.quantile(0.99))
    }

    pub(crate) fn tallies(&self) -> Tallies {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
