//! What exporting traces costs order placement: `createOrder` through the whole path — gateway, account, catalog
//! and order, each its own process (this binary in a child mode) — with every span sampled
//! (`OTEL_TRACES_SAMPLER=always_on`) and exported over OTLP to a real receiver in this process, against the same
//! path started without any `OTEL_*` variable (no exporter at all), in the same run, at the same concurrency. Both
//! log at `info` (`RUST_LOG` filters spans too).

use std::{sync::Arc, time::Duration};

use shop_testkit::{TestDatabase, otlp::OtlpReceiver};

use crate::{
    children::ChildProcess,
    orders::{Customer, load, open_account_without_auth, order_request},
    stats::Latencies,
};

/// The two ways, measured one after the other.
#[derive(Debug)]
pub struct TracingOverhead {
    pub concurrency: usize,
    /// Orders per second and latencies without an exporter.
    pub off: (f64, Latencies),
    /// The same with every span exported.
    pub on: (f64, Latencies),
    /// Spans the receiver was sent (evidence that tracing was on), seeding and warm-up included.
    pub spans_exported: usize,
    /// Orders placed while tracing was on, warm-up included.
    pub orders_traced: usize,
}

/// One shop: its three services and its gateway, each a process, on databases of their own.
struct Stack {
    processes: Vec<ChildProcess>,
    graphql: String,
    _databases: [TestDatabase; 3],
}

impl Stack {
    /// Starts the processes, exporting to `receiver` when given.
    async fn start(receiver: Option<&OtlpReceiver>) -> anyhow::Result<Self> {
        let databases =
            [TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await];
        // Both ways log at `info`, which is also what spans are filtered by (the default).
        let mut tracing: Vec<(&str, String)> = vec![("RUST_LOG", "info".to_owned())];
        if let Some(receiver) = receiver {
            tracing.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()));
            tracing.push(("OTEL_TRACES_SAMPLER", "always_on".to_owned()));
        }
        let with = |mut env: Vec<(&'static str, String)>| {
            env.extend(tracing.iter().cloned());
            env.push(("GRPC_LISTEN_ADDR", "127.0.0.1:0".to_owned()));
            env.push(("METRICS_ADDR", "127.0.0.1:0".to_owned()));
            env
        };
        let account =
            ChildProcess::start("child-account", &with(vec![("DATABASE_URL", databases[0].url.clone())]))?;
        let catalog =
            ChildProcess::start("child-catalog", &with(vec![("DATABASE_URL", databases[1].url.clone())]))?;
        let (account_url, catalog_url) =
            (format!("http://{}", account.address), format!("http://{}", catalog.address));
        let order = ChildProcess::start(
            "child-order",
            &with(vec![
                ("DATABASE_URL", databases[2].url.clone()),
                ("ACCOUNT_SERVICE_URL", account_url.clone()),
                ("CATALOG_SERVICE_URL", catalog_url.clone()),
            ]),
        )?;
        let order_url = format!("http://{}", order.address);
        let gateway = ChildProcess::gateway_with_auth(&account_url, &catalog_url, &order_url, &{
            let mut env = tracing.clone();
            env.push(("AUTH_MODE", "disabled".to_owned()));
            env
        })?;
        let graphql = format!("http://{}/graphql", gateway.address);
        Ok(Self { processes: vec![gateway, order, catalog, account], graphql, _databases: databases })
    }

    fn stop(self) -> anyhow::Result<()> {
        self.processes.into_iter().try_for_each(ChildProcess::stop)
    }
}

/// Measures both ways at `concurrency`, `duration` each, after a warm-up of each.
pub async fn overhead(concurrency: usize, duration: Duration) -> anyhow::Result<TracingOverhead> {
    let receiver = OtlpReceiver::start().await;
    let (off, on) = (Stack::start(None).await?, Stack::start(Some(&receiver)).await?);
    let http = reqwest::Client::new();
    let mut seeded = Vec::new();
    for stack in [&off, &on] {
        let mut customers = Vec::new();
        for _ in 0..20 {
            customers
                .push(Customer::unauthenticated(open_account_without_auth(&http, &stack.graphql).await?));
        }
        let mut products = Vec::new();
        for i in 0..20 {
            products.push(create_product(&http, &stack.graphql, i).await?);
        }
        seeded.push((Arc::new(customers), Arc::new(products)));
    }
    let run = |stack: usize, duration: Duration| {
        let (http, graphql) = (http.clone(), [&off, &on][stack].graphql.clone());
        let (customers, products) = seeded[stack].clone();
        load(concurrency, duration, move || {
            let (_, body) = order_request(&customers, &products);
            let request = http.post(&graphql).json(&body);
            async move {
                let response: serde_json::Value = request.send().await?.json().await?;
                anyhow::ensure!(response["data"]["createOrder"]["status"] == "CONFIRMED", "{response}");
                Ok(())
            }
        })
    };
    let warm_up = duration / 5;
    run(0, warm_up).await?;
    let warmed = run(1, warm_up).await?;
    let off_way = run(0, duration).await?;
    let on_way = run(1, duration).await?;
    off.stop()?;
    on.stop()?;
    // The processes flushed their last spans as they stopped; the seeding's requests were traced too.
    let spans_exported = receiver.spans().len();
    let orders_traced = warmed.1.count + on_way.1.count;
    Ok(TracingOverhead { concurrency, off: off_way, on: on_way, spans_exported, orders_traced })
}

async fn create_product(http: &reqwest::Client, graphql: &str, i: i64) -> anyhow::Result<String> {
    let body = serde_json::json!({
        "query": "mutation($p: ProductInput!) { createProduct(product: $p) { id } }",
        "variables": { "p": { "name": format!("product {i}"), "description": "For benchmarks.", "price": 1.0 + i as f64 } },
    });
    let response: serde_json::Value = http.post(graphql).json(&body).send().await?.json().await?;
    let id = response["data"]["createProduct"]["id"].as_str();
    id.map(str::to_owned).ok_or_else(|| anyhow::anyhow!("Failed to create a product: {response}"))
}
