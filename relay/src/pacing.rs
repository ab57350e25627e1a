//! Pacing of the work whose cost grows with the backlog: the heartbeat's watermark and the backlog gauges each scan
//! every waiting row (0.4 s at 500 000 rows). Each runs again only after [`COST_SHARE`] times what it took last,
//! when that is longer than its usual interval, so a large backlog leaves the database to draining it.

use std::time::Duration;

/// Work paced here keeps at most a twentieth of one database connection busy.
pub(crate) const COST_SHARE: u32 = 20;

/// The time from one run to the next, for work that runs every `interval` and took `took` last time.
pub(crate) fn pause_after(interval: Duration, took: Duration) -> Duration {
    interval.max(took * COST_SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_work_is_spaced_out() {
        let second = Duration::from_secs(1);
        assert_eq!(pause_after(second, Duration::from_millis(3)), second, "cheap work keeps its interval");
        assert_eq!(pause_after(second, Duration::from_millis(400)), Duration::from_secs(8));
    }
}
