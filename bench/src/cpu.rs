//! How busy the machine's cores were while something ran, from `/proc/stat`: every process counts (the benchmark,
//! its children, Postgres, the kernel's work for them), which is what bounds a way that saturates the cores. And
//! which processes kept them busy, from `/proc/<pid>/stat`: this benchmark (its clients and the services it runs
//! in-process), its gateway and relay children, and Postgres (every `postgres` process).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Mutex, PoisonError},
};

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

/// The benchmark's children by pid, with the part each plays (`gateway`, `relay`, …), for [`ByProcess`].
static CHILDREN: Mutex<Vec<(u32, Part)>> = Mutex::new(Vec::new());

/// The part a child process plays, as [`ByProcess`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Gateway,
    Relay,
    /// Any other child (a service run as a process of its own).
    OtherChild,
}

/// Notes that child `pid` plays `part`, so that its CPU time is counted as that part's.
pub fn register_child(pid: u32, part: Part) {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).push((pid, part));
}

/// Cores each kind of process kept busy while something ran (their user and system time, the kernel's work on
/// their behalf included); what the machine was busy with beyond them (interrupts, other processes) is the rest of
/// its busy cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByProcess {
    /// This benchmark's own process: its clients, and the services it runs in-process.
    pub bench: f64,
    pub gateway: f64,
    pub relay: f64,
    /// Every `postgres` process.
    pub postgres: f64,
}

/// Who a process is, for [`ByProcess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Bench,
    Child(Part),
    Postgres,
}

/// CPU ticks (user + system) per process of interest at one moment.
#[derive(Debug, Default)]
struct ProcessTicks(HashMap<u32, (Who, u64)>);

impl ProcessTicks {
    fn now() -> Self {
        let mut ticks = HashMap::new();
        let mut note = |pid: u32, who: Who| {
            if let Some(used) = process_ticks(pid) {
                ticks.insert(pid, (who, used));
            }
        };
        note(std::process::id(), Who::Bench);
        for &(pid, part) in CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            note(pid, Who::Child(part));
        }
        for pid in postgres_pids() {
            note(pid, Who::Postgres);
        }
        Self(ticks)
    }

    /// The cores each kind of process kept busy from `self` to `later`, `seconds` apart. A process that started
    /// meanwhile counts whole; one that ended meanwhile is lost (pooled connections last).
    fn busy_until(&self, later: &Self, seconds: f64) -> ByProcess {
        let ticks_per_second = 100.0; // USER_HZ, 100 on every Linux that matters
        let mut used: HashMap<Who, u64> = HashMap::new();
        for (pid, (who, after)) in &later.0 {
            let before = self.0.get(pid).map_or(0, |(_, before)| *before);
            *used.entry(*who).or_default() += after.saturating_sub(before);
        }
        let cores = |who: Who| used.get(&who).copied().unwrap_or(0) as f64 / ticks_per_second / seconds;
        ByProcess {
            bench: cores(Who::Bench),
            gateway: cores(Who::Child(Part::Gateway)),
            relay: cores(Who::Child(Part::Relay)),
            postgres: cores(Who::Postgres),
        }
    }
}

/// utime + stime of `pid`, in clock ticks, from `/proc/<pid>/stat` (its fields 14 and 15; the command name, in
/// parentheses, may hold spaces, so fields are counted after its closing one).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let (user, system) = (fields.next()?.parse::<u64>().ok()?, fields.next()?.parse::<u64>().ok()?);
    Some(user + system)
}

/// The pids of every process named `postgres` (the postmaster and its backends).
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect()
}

/// The cores this machine has (1 where that cannot be read).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPU seconds each operation cost when `busy_cores` were busy while `per_second` operations were done.
pub fn seconds_per_operation(busy_cores: f64, per_second: f64) -> f64 {
    busy_cores / per_second.max(f64::EPSILON)
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

/// [`metered`], with the cores each kind of process kept busy.
pub async fn metered_by_process<T>(work: impl Future<Output = T>) -> (T, f64, ByProcess) {
    let (before, started) = (ProcessTicks::now(), std::time::Instant::now());
    let (output, busy_cores) = metered(work).await;
    let by_process = before.busy_until(&ProcessTicks::now(), started.elapsed().as_secs_f64());
    (output, busy_cores, by_process)
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

    #[tokio::test]
    async fn spinning_is_counted_to_this_process_and_a_query_to_postgres() {
        let database = shop_testkit::TestDatabase::create().await;
        let ((), _, by_process) = metered_by_process(async {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            // About a third of a second of Postgres's own work.
            sqlx::query("SELECT count(*) FROM generate_series(1, 3000000)")
                .execute(&database.pool)
                .await
                .unwrap();
        })
        .await;

        assert!(by_process.bench >= 0.2, "{by_process:?}");
        assert!(by_process.postgres > 0.05, "{by_process:?}");
        assert_eq!((by_process.gateway, by_process.relay), (0.0, 0.0));
    }
}
