//! The results as a table on stdout and as `BENCHMARKS.md`.

use std::{fmt::Write as _, time::Duration};

use crate::{
    confirmation::SteadyConfirmation,
    cpu,
    orders::{Placement, Way},
    priced::{Answers, PricedPlacement},
    relay::{Latency, Throughput},
    replay::Replay,
    saga::{Confirmations, STOCK, SagaConfirmation},
    stats::{Latencies, ms},
    traced::TracingOverhead,
};

/// Everything one run measured, and where.
#[derive(Debug)]
pub struct Report {
    pub command: String,
    pub machine: Vec<(String, String)>,
    /// Each section, when measured (`--only` measures some).
    pub throughput: Option<Throughput>,
    pub latency: Option<Latency>,
    pub placement: Option<Placement>,
    pub priced: Option<PricedPlacement>,
    pub saga: Option<SagaConfirmation>,
    pub confirmation: Option<SteadyConfirmation>,
    pub tracing: Option<TracingOverhead>,
    pub replay: Option<Replay>,
}

fn rss(mib: Option<f64>) -> String {
    mib.map_or_else(|| "n/a".to_owned(), |mib| format!("{mib:.0} MiB"))
}

fn answers_row(answers: &Answers) -> String {
    format!(
        "{:.0} | {} | {} | {:.1}% ({} of {})",
        answers.orders_per_second,
        ms(answers.latencies.p50),
        ms(answers.latencies.p99),
        100.0 * answers.priced as f64 / answers.orders.max(1) as f64,
        answers.priced,
        answers.orders
    )
}

/// The cells of `kind` after its product's: its orders, its latencies, its confirmation's p50 and p99 over those of
/// `untracked` (the same run), and its orders that did not end confirmed.
fn confirmations_row(kind: &Confirmations, untracked: &Confirmations) -> String {
    let over = |quantile: fn(&Latencies) -> std::time::Duration| {
        quantile(&kind.confirmed).as_secs_f64()
            / quantile(&untracked.confirmed).as_secs_f64().max(f64::EPSILON)
    };
    let not_confirmed = kind.not_confirmed.values().sum::<usize>();
    let not_confirmed = if not_confirmed == 0 {
        "0".to_owned()
    } else {
        let statuses: Vec<String> =
            kind.not_confirmed.iter().map(|(status, orders)| format!("{orders} {status}")).collect();
        format!("{not_confirmed} ({})", statuses.join(", "))
    };
    format!(
        "{} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {not_confirmed}",
        kind.orders,
        ms(kind.answered.p50),
        ms(kind.confirmed.p50),
        ms(kind.confirmed.p95),
        ms(kind.confirmed.p99),
        ms(kind.confirmed.max),
        over(|latencies| latencies.p50),
        over(|latencies| latencies.p99)
    )
}

fn latency_row(name: &str, (latencies, rate): &(Latencies, f64)) -> String {
    format!(
        "| {name} | {rate:.0}/s | {} | {} | {} | {} | {} |\n",
        latencies.count,
        ms(latencies.p50),
        ms(latencies.p95),
        ms(latencies.p99),
        ms(latencies.max)
    )
}

impl Report {
    /// The results as Markdown tables (also what is printed): every section measured, in order.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        if let Some(throughput) = &self.throughput {
            out.push_str(&throughput_table(throughput));
        }
        if let Some(latency) = &self.latency {
            out.push_str(&latency_table(latency));
        }
        if let Some(placement) = &self.placement {
            out.push_str(&placement_table(placement));
            out.push_str(&authentication_table(placement));
        }
        if let Some(priced) = &self.priced {
            out.push_str(&priced_table(priced));
        }
        if let Some(saga) = &self.saga {
            out.push_str(&saga_table(saga));
        }
        if let Some(confirmation) = &self.confirmation {
            out.push_str(&confirmation_table(confirmation));
        }
        if let Some(tracing) = &self.tracing {
            out.push_str(&tracing_table(tracing));
        }
        if let Some(replay) = &self.replay {
            out.push_str(&replay_table(replay));
        }
        out.push_str(&self.memory_table());
        out
    }

    /// The peak memory of the child processes measured, if any.
    fn memory_table(&self) -> String {
        let relay = crate::stats::max(
            self.throughput.as_ref().and_then(|t| t.relay_peak_rss_mib),
            self.latency.as_ref().and_then(|l| l.relay_peak_rss_mib),
        );
        let gateway = self.placement.as_ref().and_then(|p| p.gateway_peak_rss_mib);
        let mut out = String::new();
        if self.throughput.is_some() || self.latency.is_some() || self.placement.is_some() {
            out.push_str("\n### Peak memory (RSS)\n\n| process | peak |\n|---|---|\n");
        }
        if self.throughput.is_some() || self.latency.is_some() {
            let _ = writeln!(out, "| relay | {} |", rss(relay));
        }
        if self.placement.is_some() {
            let _ = writeln!(out, "| gateway | {} |", rss(gateway));
        }
        out
    }
}

fn throughput_table(t: &Throughput) -> String {
    let cores = cpu::cores() as f64;
    let cpu_per_event = cpu::seconds_per_operation;
    let (baseline_cpu, database_cpu, relay_cpu) = (
        cpu_per_event(t.busy_cores.baseline, t.baseline_per_second),
        cpu_per_event(t.busy_cores.database, t.database_per_second),
        cpu_per_event(t.busy_cores.relay, t.relay_per_second),
    );
    // The least the relay can cost: the producer's work and the database's, each done once, spread over every core.
    let floor_per_second = cores / (baseline_cpu + database_cpu);
    let ratios: Vec<String> = t.ratios.iter().map(|ratio| format!("{ratio:.2}×")).collect();
    format!(
        "### Relay throughput ({} events over their aggregates, prefilled)\n\n\
         The bare producer and the relay ran in turn, {} times each; each row of theirs is its way's median run. \
         The relay's time over the producer's, round by round: {}.\n\n\
         Busy cores are the whole machine's during each way (every process, the kernel and Postgres included; from \
         /proc/stat). The relay cannot cost less than the bare producer's work plus its own database work, so at \
         best it runs at {cores} cores over their CPU per event added up: {floor_per_second:.0} events/s here, \
         {:.2}× the producer's time.\n\n\
         | way | events/s | busy cores | CPU per event | ratio |\n|---|---|---|---|---|\n\
         | bare rdkafka producer (same records, same settings) | {:.0} | {:.2} | {:.1} µs | 1.00 |\n\
         | bare transactional producer (a transaction per 1 000, the fencing alternative) | {:.0} | | | {:.2}× the producer's time |\n\
         | the relay's database work alone (its read and bookkeeping per 1 000, nothing sent) | {:.0} | {:.2} | {:.1} µs | |\n\
         | relay (read, send, acknowledge, delete; barrier handover) | {:.0} | {:.2} | {:.1} µs | {:.2}× the producer's time |\n\n",
        t.events,
        t.ratios.len(),
        ratios.join(", "),
        t.baseline_per_second / floor_per_second,
        t.baseline_per_second,
        t.busy_cores.baseline,
        baseline_cpu * 1e6,
        t.transactional_per_second,
        t.baseline_per_second / t.transactional_per_second,
        t.database_per_second,
        t.busy_cores.database,
        database_cpu * 1e6,
        t.relay_per_second,
        t.busy_cores.relay,
        relay_cpu * 1e6,
        t.baseline_per_second / t.relay_per_second
    )
}

fn latency_table(l: &Latency) -> String {
    let mut out = format!(
        "### Commit-to-consumer latency ({}/s target, {:.0} s each)\n\n\
         | relay waking on | achieved | events | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|---|\n",
        l.target_per_second,
        l.duration.as_secs_f64()
    );
    out.push_str(&latency_row("commit notification (LISTEN/NOTIFY)", &l.with_notify));
    out.push_str(&latency_row("fallback poll only (1 s)", &l.poll_only));
    let _ = write!(
        out,
        "\np99 ratio, poll only / notification: {:.1}×\n\n",
        l.poll_only.0.p99.as_secs_f64() / l.with_notify.0.p99.as_secs_f64().max(f64::EPSILON)
    );
    out
}

fn placement_table(p: &Placement) -> String {
    let mut out = format!(
        "### Order placement ({:.0} s per level and way)\n\n\
         `createOrder` through the gateway, driven by `shop load`, against the same SQL transaction straight to \
         Postgres. \"grpc\": the order service asks the account and catalog services (ORDER_VALIDATION=grpc, the \
         order service's own default). \"projection\": it validates from its projection of accounts and products \
         and answers priced, with the relay and every consumer running, as the one-command shop and docker-compose \
         run it.\n\n\
         | concurrency | grpc orders/s | p50 | p99 | projection orders/s | p50 | p99 | SQL orders/s | p50 | p99 \
         | SQL / grpc | SQL / projection |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        p.duration.as_secs_f64()
    );
    for level in &p.levels {
        let way = |way: &Way| {
            format!("{:.0} | {} | {}", way.per_second, ms(way.latencies.p50), ms(way.latencies.p99))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2}× | {:.2}× |",
            level.concurrency,
            way(&level.gateway),
            way(&level.gateway_projection),
            way(&level.sql),
            level.sql.per_second / level.gateway.per_second.max(f64::EPSILON),
            level.sql.per_second / level.gateway_projection.per_second.max(f64::EPSILON)
        );
    }
    out.push_str(&hops_table(p));
    out.push_str(&by_process_table(p));
    out
}

/// Where each way's CPU per operation went, by process: what the gateway's path spends beyond the SQL
/// transaction, and who spends it.
fn by_process_table(p: &Placement) -> String {
    let mut out = String::from(
        "\nWhere each operation's CPU went, by process (user and system time from /proc/<pid>/stat, the kernel's \
         work for each process included; \"rest\" is what else kept the machine busy: interrupts, other processes). \
         \"bench\" is this benchmark's process: the client sending the operations (sqlx for the SQL way, `shop \
         load`'s HTTP client for the gateway's), and in the grpc and projection ways also the account, catalog and \
         order services, which it runs in-process; in the projection way, the order and catalog services' consumers \
         and the embedded Kafka broker too. \"relay\" is the projection system's relay, carrying each order's events \
         to Kafka.\n\n\
         | concurrency | way | bench | gateway | relay | Postgres | rest | CPU per op |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for level in &p.levels {
        let rows: [(&str, &Way); 4] = [
            ("SQL transaction", &level.sql),
            ("`{ __typename }` through the gateway", &level.graphql_hop),
            ("createOrder, grpc", &level.gateway),
            ("createOrder, projection", &level.gateway_projection),
        ];
        for (name, way) in rows {
            let per_op =
                |cores: f64| format!("{:.0} µs", cpu::seconds_per_operation(cores, way.per_second) * 1e6);
            let split = way.by_process;
            let rest = (way.busy_cores - split.bench - split.gateway - split.relay - split.postgres).max(0.0);
            let _ = writeln!(
                out,
                "| {} | {name} | {} | {} | {} | {} | {} | {} |",
                level.concurrency,
                per_op(split.bench),
                per_op(split.gateway),
                per_op(split.relay),
                per_op(split.postgres),
                per_op(rest),
                per_op(way.busy_cores),
            );
        }
    }
    out
}

/// What each way cost the machine, and the least the gateway's path can cost: the SQL transaction plus the hops
/// and look-ups it cannot do without, each measured alone beside it.
fn hops_table(p: &Placement) -> String {
    let cores = cpu::cores();
    let mut out = format!(
        "\nWhat each way cost the whole machine (every process, the kernel included; from /proc/stat), beside what \
         the gateway's path adds to the SQL transaction, each measured alone doing nothing else: `{{ __typename }}` \
         through the same gateway (HTTP and GraphQL), a gRPC health check of the order service (one gRPC round \
         trip), and validation's look-ups — the account service's `GetAccount` and the catalog's `GetProducts` of 1 \
         to 5 products (grpc validation asks both, at once), or the one read of the order service's projection of \
         accounts and products (projection validation). The floor of a way is the SQL transaction plus its parts: \
         at concurrency 1, their mean latencies added up (grpc's two look-ups count once, the slower); above it, \
         their CPU per operation added up, spread over the {cores} cores. The ratio floor is SQL's orders/s over the \
         floor's. The projection way's floor leaves out carrying the order's events to Kafka and consuming them, \
         which the relay and the consumers do beside the placement (see the next table).\n\n\
         | concurrency | way | ops/s | p50 | p99 | busy cores | CPU per op | floor | ratio floor | ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    for level in &p.levels {
        let c = level.concurrency;
        // The SQL transaction, the gateway and the hop to the order service, then validation's `lookups`.
        let floor = |lookups: &[&Way]| {
            let path = [&level.sql, &level.graphql_hop, &level.grpc_hop];
            if c == 1 {
                let slowest = lookups.iter().map(|way| way.mean_latency(c)).max().unwrap_or_default();
                let time = path.iter().map(|way| way.mean_latency(c)).sum::<Duration>() + slowest;
                c as f64 / time.as_secs_f64()
            } else {
                let cpu = path.iter().chain(lookups).map(|way| way.cpu_per_operation()).sum::<Duration>();
                cores as f64 / cpu.as_secs_f64()
            }
        };
        let rows: [(&str, &Way, Option<f64>); 8] = [
            ("SQL transaction", &level.sql, None),
            ("`{ __typename }` through the gateway", &level.graphql_hop, None),
            ("gRPC health check", &level.grpc_hop, None),
            ("`GetAccount` of the account service", &level.account_lookup, None),
            ("`GetProducts` of the catalog", &level.products_lookup, None),
            ("the projection's read of an order's names", &level.projection_lookup, None),
            (
                "createOrder, grpc",
                &level.gateway,
                Some(floor(&[&level.account_lookup, &level.products_lookup])),
            ),
            ("createOrder, projection", &level.gateway_projection, Some(floor(&[&level.projection_lookup]))),
        ];
        for (name, way, floor) in rows {
            let (floor, ratio_floor, ratio) = match floor {
                Some(floor) => (
                    format!("{floor:.0}/s"),
                    format!("{:.2}×", level.sql.per_second / floor),
                    format!("{:.2}×", level.sql.per_second / way.per_second.max(f64::EPSILON)),
                ),
                None => Default::default(),
            };
            let _ = writeln!(
                out,
                "| {c} | {name} | {:.0} | {} | {} | {:.2} | {:.0} µs | {floor} | {ratio_floor} | {ratio} |",
                way.per_second,
                ms(way.latencies.p50),
                ms(way.latencies.p99),
                way.busy_cores,
                way.cpu_per_operation().as_secs_f64() * 1e6,
            );
        }
    }
    out
}

fn replay_table(r: &Replay) -> String {
    let cores = cpu::cores() as f64;
    let busy = &r.busy_cores;
    let micros = |busy: f64, per_second: f64| cpu::seconds_per_operation(busy, per_second) * 1e6;
    let (bare_cpu, apply_cpu) = (
        micros(busy.bare_consumer, r.bare_consumer_per_second),
        micros(busy.apply_alone, r.apply_alone_per_second),
    );
    // The least a rebuild can cost: reading the records and applying them, each done once, over every core.
    let floor_per_second = cores * 1e6 / (bare_cpu + apply_cpu);
    let of_bare = |per_second: f64| per_second / r.bare_consumer_per_second.max(f64::EPSILON);
    let ratios: Vec<String> = r.ratios.iter().map(|ratio| format!("{ratio:.2}×")).collect();
    format!(
        "\n### Replay\n\n\
         The four ways ran in turn, {} times each; each row is its way's median run. The rebuild's rate over the \
         bare consumer's, round by round: {}.\n\n\
         Busy cores are the whole machine's during each way (every process, the kernel and Postgres included; from \
         /proc/stat). A rebuild cannot cost less than reading the records plus applying them, so at best it runs at \
         {cores} cores over their CPU per event added up: {floor_per_second:.0} events/s here, {:.2}× the bare \
         consumer's rate. It reads ahead while it applies, and applies each batch in two transactions side by \
         side (each holding partitions of its own), batch after batch, so it cannot beat applying alone that way: \
         the same records, nothing read from Kafka, run at {:.0} events/s here ({:.2}× the bare consumer's rate), \
         and the rebuild reaches {:.2}× of that while it also reads and decodes on the same cores.\n\n\
         | rebuild | events | events/s | applied | ignored | ratio | busy cores | CPU per event |\n\
         |---|---|---|---|---|---|---|---|\n\
         | bare consumer reading the same topics (no group, nothing applied) | {} | {:.0} | | | 1.00 | {:.2} | {bare_cpu:.1} µs |\n\
         | the projection applying the same records alone (batches of 5 000, nothing read from Kafka) | {} | {:.0} | | | {:.2}× | {:.2} | {apply_cpu:.1} µs |\n\
         | the same, each batch in two transactions side by side (accounts, products), as the rebuild applies it | {} | {:.0} | | | {:.2}× | {:.2} | {:.1} µs |\n\
         | order projection (accounts, products) | {} | {:.0} | {} | {} | {:.2}× the bare consumer's rate | {:.2} | {:.1} µs |\n",
        r.ratios.len(),
        ratios.join(", "),
        of_bare(floor_per_second),
        r.apply_side_by_side_per_second,
        of_bare(r.apply_side_by_side_per_second),
        r.per_second / r.apply_side_by_side_per_second.max(f64::EPSILON),
        r.events,
        r.bare_consumer_per_second,
        busy.bare_consumer,
        r.events,
        r.apply_alone_per_second,
        of_bare(r.apply_alone_per_second),
        busy.apply_alone,
        r.events,
        r.apply_side_by_side_per_second,
        of_bare(r.apply_side_by_side_per_second),
        busy.apply_side_by_side,
        micros(busy.apply_side_by_side, r.apply_side_by_side_per_second),
        r.events,
        r.per_second,
        r.applied,
        r.ignored,
        of_bare(r.per_second),
        busy.rebuild,
        micros(busy.rebuild, r.per_second),
    )
}

/// `createOrder` through a gateway that requires a customer's token, against the one that does not.
fn authentication_table(p: &Placement) -> String {
    let mut out = format!(
        "\n### Order placement with authentication ({:.0} s per level)\n\n\
             Each request carries the ES256 token of the customer owning the account: verified against keys the \
             gateway fetched from the issuer's JWKS, then the account's owner checked. Compared with the gateway \
             without authentication above, measured in turn at each level.\n\n\
             | concurrency | orders/s | p50 | p99 | auth-on / auth-off, time per order | p50 auth-on / auth-off |\n\
             |---|---|---|---|---|---|\n",
        p.duration.as_secs_f64()
    );
    for level in &p.levels {
        let (on, off) = (&level.gateway_with_auth, &level.gateway);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.2}× | {:.2}× |",
            level.concurrency,
            on.per_second,
            ms(on.latencies.p50),
            ms(on.latencies.p99),
            off.per_second / on.per_second.max(f64::EPSILON),
            on.latencies.p50.as_secs_f64() / off.latencies.p50.as_secs_f64().max(f64::EPSILON)
        );
    }
    out
}

/// How often `createOrder` answered the priced order in projection mode.
fn priced_table(p: &PricedPlacement) -> String {
    let mut out = format!(
        "\n### Priced answers in projection mode (ORDER_PRICED_ANSWER_WAIT_MS = {}, {:.0} s per level and client)\n\n\
             | concurrency | client | orders/s | createOrder p50 | p99 | answered priced |\n|---|---|---|---|---|---|\n",
        p.wait_ms,
        p.duration.as_secs_f64()
    );
    for level in &p.levels {
        for (client, answers) in [
            ("customers and products created long before", &level.known),
            ("account and product created just before (the original's clients)", &level.fresh),
        ] {
            let _ = writeln!(out, "| {} | {client} | {} |", level.concurrency, answers_row(answers));
        }
    }
    out
}

/// Placement to confirmation in projection mode, of a product without the stock saga and of one with it.
fn saga_table(s: &SagaConfirmation) -> String {
    let mut out = format!(
        "\n### Placement to confirmation with the stock saga (projection mode, {:.0} s per level and product)\n\n\
             From sending `createOrder` (one unit, through the gateway) to reading the order `CONFIRMED` in the \
             order service's database, read again on every commit notification of its outbox rather than polled: \
             for a product that does not track its stock, which `createOrder` confirms itself, and for one tracking \
             {STOCK} units, answered `AWAITING_STOCK` and confirmed once the relay has carried it to the catalog's \
             consumer, which reserves, and the reservation back to the order service's consumer.\n\n\
             | concurrency | product | orders | createOrder p50 | confirmed p50 | p95 | p99 | max | p50 / untracked \
             | p99 / untracked | not confirmed |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        s.duration.as_secs_f64()
    );
    for level in &s.levels {
        for (product, kind) in
            [("does not track its stock", &level.untracked), ("tracks its stock", &level.tracked)]
        {
            let row = confirmations_row(kind, &level.untracked);
            let _ = writeln!(out, "| {} | {product} | {row} |", level.concurrency);
        }
    }
    if let Some(wait) = s.mock_fetch_wait_ms {
        let _ = writeln!(
            out,
            "\nThe embedded mock cluster answers a fetch that found no record only after the consumer's \
                 fetch.wait.max.ms ({wait} ms for the shop's consumers), even when records arrive meanwhile, so each \
                 of the saga's two consumer hops may wait that long here; a broker answers as they arrive."
        );
    }
    out
}

/// Placement to confirmation at a steady rate, to the topic and to the database.
fn confirmation_table(c: &SteadyConfirmation) -> String {
    let mut out = format!(
        "\n### Placement to confirmation at a steady {} orders/s (projection mode, {:.0} s per way)\n\n\
         Orders of one unit sent through the gateway on a fixed schedule (open loop), each way on a system of its \
         own, measured after {:.0} s at the rate. From `createOrder`'s answer to the order's `shop.order.confirmed.v1` record read from the orders topic \
         (a consumer at the topic's end), and to the order read `CONFIRMED` in the order database (read again on \
         every commit notification of its outbox). `createOrder` is timed from when the order was due.\n\n\
         | way | orders | achieved | createOrder p50 | p99 | → topic p50 | p95 | p99 | max | → database p50 | p99 \
         | max | not on the topic |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        c.rate,
        c.duration.as_secs_f64(),
        crate::confirmation::WARM_UP.as_secs_f64()
    );
    for way in &c.ways {
        let database = way.to_database.as_ref().map_or_else(
            || "— | — | —".to_owned(),
            |latencies| format!("{} | {} | {}", ms(latencies.p50), ms(latencies.p99), ms(latencies.max)),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {:.0}/s | {} | {} | {} | {} | {} | {} | {database} | {} |",
            way.name,
            way.orders,
            way.achieved,
            ms(way.answered.p50),
            ms(way.answered.p99),
            ms(way.to_topic.p50),
            ms(way.to_topic.p95),
            ms(way.to_topic.p99),
            ms(way.to_topic.max),
            way.unconfirmed
        );
    }
    out
}

/// Placement with every span exported against no exporter.
fn tracing_table(t: &TracingOverhead) -> String {
    let mut out = format!(
        "\n### Tracing overhead (concurrency {})\n\n\
             `createOrder` through gateway, account, catalog and order, each its own process: with \
             `OTEL_EXPORTER_OTLP_ENDPOINT` set and `OTEL_TRACES_SAMPLER=always_on` (every span exported over OTLP/gRPC \
             to a receiver in the benchmark's process; {} spans for {} orders, seeding included), and the same \
             processes started without any `OTEL_*` variable.\n\n\
             | tracing | orders/s | p50 | p99 | max | p50 / off | p99 / off | orders/s / off |\n\
             |---|---|---|---|---|---|---|---|\n",
        t.concurrency, t.spans_exported, t.orders_traced
    );
    let off = &t.off;
    for (name, (rate, latencies)) in [("off", &t.off), ("on, 100 % sampled", &t.on)] {
        let _ = writeln!(
            out,
            "| {name} | {rate:.0} | {} | {} | {} | {:.2}× | {:.2}× | {:.2}× |",
            ms(latencies.p50),
            ms(latencies.p99),
            ms(latencies.max),
            latencies.p50.as_secs_f64() / off.1.p50.as_secs_f64().max(f64::EPSILON),
            latencies.p99.as_secs_f64() / off.1.p99.as_secs_f64().max(f64::EPSILON),
            rate / off.0.max(f64::EPSILON),
        );
    }
    out
}

impl Report {
    /// The whole `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Benchmarks\n\n");
        let _ = write!(
            out,
            "Produced by `{}` on {}. Every figure sits next to a baseline measured in the same run, so ratios \
             travel between machines better than raw numbers do.\n\n| machine | |\n|---|---|\n",
            self.command,
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        for (name, value) in &self.machine {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        out.push('\n');
        out.push_str(&self.tables());
        out
    }
}
