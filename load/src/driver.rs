//! Sending operations at the target: a closed loop of clients, or an open loop that starts operations on a
//! schedule whatever the shop answers; and the progress line on stderr once a second.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    client::Gateway,
    config::{LoadConfig, Target},
    mix::Sampler,
    operations,
    stats::Recorder,
    world::World,
};

/// What the operations share.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) world: Arc<World>,
    pub(crate) gateway: Gateway,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) sampler: Sampler,
    pub(crate) follow_timeout: Duration,
}

impl Load {
    /// Sends one operation of the mix, recording its latency from `due`.
    async fn send_one(&self, due: Instant) {
        let operation = self.sampler.pick();
        let outcome = operations::execute(operation, &self.world, &self.gateway, self.follow_timeout).await;
        self.recorder.record(operation, due.elapsed(), &outcome);
    }
}

/// Sends operations for `config.duration`, then waits for those in flight; returns how long all that took.
pub(crate) async fn drive(config: &LoadConfig, load: Load) -> Duration {
    let started = Instant::now();
    let deadline = started + config.duration;
    let progress = config.progress.then(|| tokio::spawn(progress(load.recorder.clone(), started)));
    let mut tasks = JoinSet::new();
    match config.target {
        Target::Concurrency(clients) => {
            for _ in 0..clients {
                let load = load.clone();
                tasks.spawn(async move {
                    while Instant::now() < deadline {
                        load.send_one(Instant::now()).await;
                    }
                });
            }
        }
        Target::Rate(rate) => {
            open_loop(&load, rate, config.max_in_flight, started, deadline, &mut tasks).await
        }
    }
    while let Some(joined) = tasks.join_next().await {
        reraise(joined);
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    started.elapsed()
}

/// Starts operation `i` at `started + i / rate`, each in its own task, until `deadline`. Latencies count from
/// when an operation was due, so time spent waiting for a slow shop (or for a free slot under `max_in_flight`)
/// is in them rather than hidden by sending later.
async fn open_loop(
    load: &Load,
    rate: f64,
    max_in_flight: usize,
    started: Instant,
    deadline: Instant,
    tasks: &mut JoinSet<()>,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    for i in 0_u64.. {
        // From the start rather than from the previous send, so rounding never accumulates into a lower rate.
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let load = load.clone();
        tasks.spawn(async move {
            load.send_one(due).await;
            drop(slot);
        });
        while let Some(joined) = tasks.try_join_next() {
            reraise(joined);
        }
    }
}

/// A panic in an operation is a bug of the generator: it ends the run rather than skewing its figures.
fn reraise(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// One line a second on stderr: operations so far and their rate, errors, p50 and p99 so far.
async fn progress(recorder: Arc<Recorder>, started: Instant) {
    let mut ticks =
        tokio::time::interval_at((started + Duration::from_secs(1)).into(), Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let elapsed = started.elapsed().as_secs_f64();
        let (count, errors, p50, p99) = recorder.overall();
        eprintln!(
            "[{elapsed:>5.0} s] {count} operations, {:.1}/s, {errors} errors, p50 {:.1} ms, p99 {:.1} ms",
            count as f64 / elapsed,
            p50.as_secs_f64() * 1_000.0,
            p99.as_secs_f64() * 1_000.0,
        );
    }
}
