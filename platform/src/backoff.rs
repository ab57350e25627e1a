//! Exponential backoff, the one way every retry loop of the shop waits between attempts.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Pauses that double from `initial` up to `max`, starting over after [`reset`](Self::reset).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, next: initial }
    }

    /// 100 ms doubling up to 10 s: retries of a database or a broker that is away.
    pub const fn standard() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// The pause to take now; the one after is twice as long, up to the maximum.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// After a success: the next pause is the initial one again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for the next pause, or until `stop`. Returns `false` if stopped.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let pause = self.next_pause();
        tokio::select! {
            () = stop.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_maximum_and_start_over_after_a_reset() {
        let mut backoff = Backoff::standard();

        let pauses: Vec<u128> = (0..10).map(|_| backoff.next_pause().as_millis()).collect();
        backoff.reset();

        assert_eq!(pauses, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
        assert_eq!(backoff.next_pause(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_early_when_stopped() {
        let stop = CancellationToken::new();
        stop.cancel();

        assert!(!Backoff::new(Duration::from_secs(60), Duration::from_secs(60)).wait(&stop).await);
    }
}
