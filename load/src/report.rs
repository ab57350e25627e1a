//! The final report: per operation, how many were sent, how many failed and with which codes, their latency
//! percentiles and the rate achieved; as a text table or JSON.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{config::Target, mix::Mix, stats::Tally};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What one operation (or all of them, `"all"`) came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationReport {
    pub operation: String,
    /// Operations answered (or failed), errors included.
    pub count: u64,
    pub errors: u64,
    /// Failures per code: a GraphQL `extensions.code`, `HTTP_<status>`, `TRANSPORT_<kind>`, `WEBSOCKET_…`, or a
    /// code of the generator's own for an answer missing what it should hold.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Operations per second over the run.
    pub rate_per_second: f64,
    /// Over every operation, failed ones included; from when it was due in an open-loop run.
    pub latency_ms: Latencies,
}

impl OperationReport {
    pub(crate) fn of(operation: &str, tally: &Tally, elapsed: Duration) -> Self {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let histogram = &tally.latencies;
        let latency_ms = Latencies {
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1_000.0,
        };
        Self {
            operation: operation.to_owned(),
            count: tally.count(),
            errors: tally.error_count(),
            errors_by_code: tally.errors.clone(),
            rate_per_second: tally.count() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            latency_ms,
        }
    }

    /// The p50, p95, p99 and max latencies as durations.
    pub fn percentiles(&self) -> [Duration; 4] {
        let Latencies { p50, p95, p99, max, .. } = self.latency_ms;
        [p50, p95, p99, max].map(|ms| Duration::from_secs_f64(ms / 1_000.0))
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub endpoint: String,
    pub target: Target,
    /// The mix, `name=weight,…`.
    pub mix: String,
    pub credentials: String,
    /// How long operations were started for.
    pub duration_secs: f64,
    /// From the first operation to the last answer (the last in flight at the end included).
    pub elapsed_secs: f64,
    /// One per operation of the mix, in the mix's order.
    pub operations: Vec<OperationReport>,
    /// Every operation together.
    pub total: OperationReport,
    /// What the run changed or could not do, in words (an operation left out, and why).
    pub notes: Vec<String>,
}

/// How a run was set up, for its report.
#[derive(Debug)]
pub(crate) struct RunFacts<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) target: Target,
    pub(crate) mix: &'a Mix,
    pub(crate) credentials: &'a str,
    pub(crate) duration: Duration,
    pub(crate) elapsed: Duration,
    pub(crate) notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(facts: RunFacts<'_>, tallies: &crate::stats::Tallies) -> Self {
        let empty = Tally::default();
        let operations = facts
            .mix
            .operations()
            .map(|operation| {
                let tally = tallies.operations.get(&operation).unwrap_or(&empty);
                OperationReport::of(operation.name(), tally, facts.elapsed)
            })
            .collect();
        Self {
            endpoint: facts.endpoint.to_owned(),
            target: facts.target,
            mix: facts.mix.to_string(),
            credentials: facts.credentials.to_owned(),
            duration_secs: facts.duration.as_secs_f64(),
            elapsed_secs: facts.elapsed.as_secs_f64(),
            operations,
            total: OperationReport::of("all", &tallies.all, facts.elapsed),
            notes: facts.notes,
        }
    }

    /// The report of `operation` (`"create-order"`, …), if it was in the mix.
    pub fn operation(&self, operation: &str) -> Option<&OperationReport> {
        self.operations.iter().find(|report| report.operation == operation)
    }

    /// The report as a table, one row per operation and one for all.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "shop load: {target} for {duration:.1} s against {endpoint} (tokens: {credentials}); {elapsed:.1} s \
             until the last answer\n\n",
            target = self.target,
            duration = self.duration_secs,
            endpoint = self.endpoint,
            credentials = self.credentials,
            elapsed = self.elapsed_secs,
        );
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  errors by code",
            "operation", "count", "errors", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for report in self.operations.iter().chain([&self.total]) {
            let Latencies { p50, p95, p99, max, .. } = report.latency_ms;
            let codes: Vec<String> =
                report.errors_by_code.iter().map(|(code, count)| format!("{code} {count}")).collect();
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
                report.operation,
                report.count,
                report.errors,
                report.rate_per_second,
                p50,
                p95,
                p99,
                max,
                if codes.is_empty() { "-".to_owned() } else { codes.join(", ") },
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{client::Failure, mix::Operation, stats::Recorder};

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn percentiles_are_those_of_every_operation_within_the_histograms_precision() {
        // Arrange: 1 ms to 100 ms, one operation each, so the p-th percentile is p ms.
        let recorder = Recorder::default();
        for latency in 1..=100 {
            recorder.record(Operation::Browse, ms(latency), &Ok(()));
        }

        // Act
        let report =
            OperationReport::of("browse", &recorder.tallies().operations[&Operation::Browse], ms(2_000));

        // Assert: 3 significant figures, so within 0.1 %.
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        let Latencies { p50, p95, p99, max, mean } = report.latency_ms;
        assert!(close(p50, 50.0) && close(p95, 95.0) && close(p99, 99.0) && close(max, 100.0), "{report:?}");
        assert!(close(mean, 50.5), "{mean}");
        assert_eq!(report.count, 100);
        assert_eq!(report.rate_per_second, 50.0);
        assert!(report.percentiles().windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn errors_are_counted_by_code_per_operation_and_in_all_and_their_latencies_count_too() {
        // Arrange
        let recorder = Recorder::default();
        let failure = |code: &str| Err(Failure::new(code));
        recorder.record(Operation::CreateOrder, ms(5), &Ok(()));
        recorder.record(Operation::CreateOrder, ms(7), &failure("CONFLICT"));
        recorder.record(Operation::CreateOrder, ms(9_000), &failure("TRANSPORT_TIMEOUT"));
        recorder.record(Operation::Search, ms(3), &failure("CONFLICT"));
        let mix: Mix = "create-order=1,search=1".parse().unwrap();
        let facts = RunFacts {
            endpoint: "http://127.0.0.1:8080/graphql",
            target: Target::Concurrency(2),
            mix: &mix,
            credentials: "none",
            duration: ms(1_000),
            elapsed: ms(1_000),
            notes: vec![],
        };

        // Act
        let report = Report::new(facts, &recorder.tallies());

        // Assert
        let orders = report.operation("create-order").unwrap();
        assert_eq!((orders.count, orders.errors), (3, 2));
        assert_eq!(
            orders.errors_by_code,
            BTreeMap::from([("CONFLICT".into(), 1), ("TRANSPORT_TIMEOUT".into(), 1)])
        );
        assert!(orders.latency_ms.max >= 9_000.0, "a timed-out operation is the slowest: {orders:?}");
        assert_eq!(
            report.total.errors_by_code,
            BTreeMap::from([("CONFLICT".into(), 2), ("TRANSPORT_TIMEOUT".into(), 1)])
        );
        assert_eq!(report.total.count, 4);
        let browse = report.operation("browse").unwrap();
        assert_eq!((browse.count, browse.errors), (0, 0), "in the mix by default, never sent here");
        let text = report.to_text();
        assert!(text.contains("CONFLICT 1, TRANSPORT_TIMEOUT 1"), "{text}");
        let json: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(json, report);
    }
}
