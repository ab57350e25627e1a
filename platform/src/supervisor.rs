//! Running the long-lived parts of one process together, and keeping them running.
//!
//! A process is its server plus background parts (a projection consumer, the order validator, one relay per
//! outbox). Joining the background parts only after the server stops — the easy way — lets a consumer that died
//! leave its service looking healthy for ever. The [`Supervisor`] watches every part at once instead:
//! - an **essential** part (the server) ending on its own stops the whole process with its error;
//! - a **restarting** part that ends, fails or panics is reported NOT_SERVING with the reason and started again
//!   after a backoff, for as long as the process runs.

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::Backoff,
    health::{Health, PartHealth},
};

/// How long parts get to stop once asked, before they are aborted.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// A part that ran this long before failing starts again after the shortest pause.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What a restarting part is given each time it starts: when to stop, and where to say how it is doing.
#[derive(Debug, Clone)]
pub struct Part {
    pub stop: CancellationToken,
    pub health: PartHealth,
}

/// The parts of one process.
#[derive(Debug)]
pub struct Supervisor {
    stop: CancellationToken,
    parts: JoinSet<(String, anyhow::Result<()>)>,
    health: Health,
    grace: Duration,
}

impl Supervisor {
    /// Parts report to `health`.
    pub fn new(health: &Health) -> Self {
        Self {
            stop: CancellationToken::new(),
            parts: JoinSet::new(),
            health: health.clone(),
            grace: DEFAULT_GRACE,
        }
    }

    /// How long parts get to stop once asked (default 30 s), before they are aborted.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Cancelled when the process stops; hand it to parts that take a shutdown signal (the server).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs a part whose end ends the process: should it stop (or fail) before the process is stopped, every other
    /// part is stopped and [`run_until`](Self::run_until) returns its error.
    pub fn essential(
        &mut self,
        name: impl Into<String>,
        part: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let name = name.into();
        self.parts.spawn(async move { (name, part.await) });
    }

    /// Runs a part until the process stops. `start` starts it; should the part end, fail or panic before the
    /// process stops, it is reported NOT_SERVING with the reason and started again after a backoff (100 ms, doubling
    /// up to 30 s). The part reports itself SERVING once it does its job.
    pub fn restarting<F, Fut>(&mut self, name: impl Into<String>, mut start: F)
    where
        F: FnMut(Part) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        let (stop, health) = (self.stop.clone(), self.health.part(name.clone()));
        self.parts.spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
            loop {
                let started = Instant::now();
                let attempt = tokio::spawn(start(Part { stop: stop.child_token(), health: health.clone() }));
                let outcome = attempt.await;
                if stop.is_cancelled() {
                    let outcome = outcome.with_context(|| format!("{name} panicked while stopping")).and_then(|o| o);
                    return (name, outcome);
                }
                let reason = match outcome {
                    Ok(Ok(())) => "it stopped on its own".to_owned(),
                    Ok(Err(error)) => format!("{error:#}"),
                    Err(error) if error.is_panic() => "it panicked".to_owned(),
                    Err(error) => error.to_string(),
                };
                if started.elapsed() >= HEALTHY_RUN {
                    backoff.reset();
                }
                health.not_serving(format!("restarting: {reason}"));
                tracing::error!(part = %name, reason, "A part of the process stopped unexpectedly; restarting it.");
                if !backoff.wait(&stop).await {
                    return (name, Ok(()));
                }
            }
        });
    }

    /// Runs until `shutdown` resolves or an essential part ends; then asks every part to stop, waits for them for
    /// the grace period (aborting the rest), and returns the first failure.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let ended = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(joined) = self.parts.join_next() => match joined {
                Ok((name, Ok(()))) => Err(anyhow::anyhow!("{name} stopped unexpectedly")),
                Ok((name, Err(error))) => Err(error.context(format!("{name} failed"))),
                Err(error) => Err(anyhow::Error::new(error).context("A part panicked")),
            },
        };
        if let Err(error) = &ended {
            tracing::error!(error.cause_chain = ?error, error.message = %error, "Stopping the process.");
        }
        self.stop.cancel();
        ended.and(self.stop_parts().await)
    }

    async fn stop_parts(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.grace;
        let mut result = Ok(());
        loop {
            let joined = match tokio::time::timeout_at(deadline, self.parts.join_next()).await {
                Ok(Some(joined)) => joined,
                Ok(None) => return result,
                Err(_elapsed) => {
                    tracing::warn!(
                        parts = self.parts.len(),
                        "Parts did not stop within the grace period; aborting them."
                    );
                    self.parts.abort_all();
                    return result;
                }
            };
            let failure = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((name, Err(error))) => error.context(format!("{name} failed while stopping")),
                Err(error) => anyhow::Error::new(error).context("A part panicked while stopping"),
            };
            tracing::error!(error.cause_chain = ?failure, "A part failed while stopping.");
            result = result.and(Err(failure));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;
    use crate::health::PartStatus;

    #[tokio::test(start_paused = true)]
    async fn a_part_that_fails_is_restarted_and_reported_until_it_serves() {
        // Arrange: a part that fails twice, then serves until stopped.
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let starts = Arc::new(AtomicU32::new(0));
        supervisor.restarting("consumer", {
            let starts = starts.clone();
            move |part: Part| {
                let attempt = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    anyhow::ensure!(attempt >= 2, "Kafka is unreachable");
                    part.health.serving();
                    part.stop.cancelled().await;
                    Ok(())
                }
            }
        });
        let stop = CancellationToken::new();
        let running = tokio::spawn(supervisor.run_until(stop.clone().cancelled_owned()));

        // Act: the first attempt fails at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_first_failure = health.statuses()["consumer"].clone();
        tokio::time::sleep(Duration::from_secs(1)).await;

        // Assert
        assert_eq!(after_first_failure, PartStatus::NotServing("restarting: Kafka is unreachable".into()));
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert!(health.is_serving());
        stop.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_part_is_restarted_too() {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let starts = Arc::new(AtomicU32::new(0));
        supervisor.restarting("validator", {
            let starts = starts.clone();
            move |part: Part| {
                let attempt = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(attempt > 0, "a bug");
                    part.health.serving();
                    part.stop.cancelled().await;
                    Ok(())
                }
            }
        });
        let stop = CancellationToken::new();
        let running = tokio::spawn(supervisor.run_until(stop.clone().cancelled_owned()));

        tokio::time::sleep(Duration::from_secs(1)).await;

        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert!(health.is_serving());
        stop.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_essential_part_that_ends_stops_the_process_with_its_error() {
        let health = Health::new();
        let mut supervisor = Supervisor::new(&health);
        let other_stopped = Arc::new(AtomicU32::new(0));
        supervisor.restarting("consumer", {
            let other_stopped = other_stopped.clone();
            move |part: Part| {
                let other_stopped = other_stopped.clone();
                async move {
                    part.stop.cancelled().await;
                    other_stopped.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        });
        supervisor.essential("server", async { Err(anyhow::anyhow!("the listener failed")) });

        let error = supervisor.run_until(std::future::pending()).await.unwrap_err();

        assert_eq!(format!("{error:#}"), "server failed: the listener failed");
        assert_eq!(other_stopped.load(Ordering::SeqCst), 1, "the other parts were stopped");
    }
}
