//! How busy the machine's cores were while something ran, from `/proc/stat`: every process counts (the benchmark,
//! its children, Postgres, the kernel's work for them), which is what bounds a way that saturates the cores.

use std::future::Future;

/// The machine's CPU time counters at one moment, in clock ticks summed over every core.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    busy: u64,
    total: u64,
}

impl Ticks {
    /// The first line of `/proc/stat` (`cpu user nice system idle iowait irq softirq steal …`); `None` where there
    /// is no such file.
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let counters: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).take(8).map_while(|n| n.parse().ok()).collect();
        let [user, nice, system, idle, iowait, irq, softirq, steal] = counters[..] else { return None };
        let busy = user + nice + system + irq + softirq + steal;
        Some(Self { busy, total: busy + idle + iowait })
    }
}

/// The cores this machine has (1 where that cannot be read).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `work` and returns its output with the average number of cores busy meanwhile (0 where `/proc/stat` is
/// missing).
pub async fn metered<T>(work: impl Future<Output = T>) -> (T, f64) {
    let before = Ticks::now();
    let output = work.await;
    let busy_cores = match (before, Ticks::now()) {
        (Some(before), Some(after)) if after.total > before.total => {
            cores() as f64 * (after.busy - before.busy) as f64 / (after.total - before.total) as f64
        }
        _ => 0.0,
    };
    (output, busy_cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spinning_keeps_about_one_core_busy() {
        let ((), busy) = metered(async {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        })
        .await;

        // The spinning thread alone; whatever else the machine does only adds to it.
        assert!(busy >= 0.8, "{busy}");
    }
}
