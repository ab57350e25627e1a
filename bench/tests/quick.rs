//! The benchmark command in its quick mode, so that it never rots: it must run every benchmark end to end and
//! write a report with every section filled in. It asserts no timing (this machine is shared and noisy); the
//! numbers belong to `BENCHMARKS.md`, from a full run.

use std::process::Command;

#[test]
fn the_quick_benchmark_run_measures_everything_and_writes_its_report() {
    let output = std::env::temp_dir().join(format!("BENCHMARKS-{}.md", uuid::Uuid::now_v7()));

    let run = Command::new(env!("CARGO_BIN_EXE_shop-bench"))
        .args(["--quick", "--output"])
        .arg(&output)
        .env("RUST_LOG", "warn")
        .output()
        .expect("Failed to start shop-bench");

    assert!(
        run.status.success(),
        "shop-bench --quick exited with {}:\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(&output).expect("the report");
    std::fs::remove_file(&output).ok();
    for section in [
        "### Relay throughput",
        "| bare rdkafka producer",
        "### Commit-to-consumer latency",
        "| commit notification (LISTEN/NOTIFY)",
        "| fallback poll only",
        "### Order placement",
        "| `{ __typename }` through the gateway |",
        "| gRPC health check |",
        "| createOrder, grpc |",
        "### Order placement with authentication",
        "### Priced answers in projection mode",
        "| account and product created just before (the original's clients) |",
        "### Placement to confirmation with the stock saga",
        "| does not track its stock |",
        "| tracks its stock |",
        "### Placement to confirmation at a steady",
        "| answered pending, confirmed by the validator",
        "| confirmed by createOrder itself",
        "### Tracing overhead",
        "| on, 100 % sampled |",
        "### Replay",
        "The rebuild's rate over the bare consumer's, round by round: ",
        "| bare consumer reading the same topics",
        "| the same, each batch in two transactions side by side",
        "### Peak memory (RSS)",
        "cargo run --release -p shop-bench -- --quick",
    ] {
        assert!(report.contains(section), "the report lacks {section:?}:\n{report}");
    }
    // Every measurement produced a number: no empty latency sets, no memory that could not be read.
    assert!(!report.contains("| 0 | 0.0 ms"), "a latency run received nothing:\n{report}");
    assert!(!report.contains("n/a"), "a peak RSS could not be read:\n{report}");
    let replayed = report
        .lines()
        .find(|line| line.starts_with("| order projection"))
        .and_then(|line| line.split('|').nth(2))
        .and_then(|events| events.trim().parse::<u64>().ok());
    assert_eq!(replayed, Some(2_000), "the replay consumed every event it published:\n{report}");
    // With tracing on, spans reached the benchmark's receiver.
    let spans = report
        .split(" spans for ")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|spans| spans.parse::<u64>().ok());
    assert!(spans.is_some_and(|spans| spans > 0), "no span was exported with tracing on:\n{report}");
    // Every order of the saga's rows (two products at each of two levels) ended confirmed.
    let saga_rows: Vec<&str> = report
        .lines()
        .filter(|line| line.contains("| does not track its stock |") || line.contains("| tracks its stock |"))
        .collect();
    assert_eq!(saga_rows.len(), 4, "a level or a product of the saga is missing:\n{report}");
    assert!(
        saga_rows.iter().all(|row| row.ends_with("| 0 |")),
        "orders of the saga's benchmark did not end confirmed:\n{report}"
    );
}
