//! Planted secrets never reach the logs: the real `shop` binary runs with a password in every URL it takes (the
//! userinfo, `?password=`, a parameter sqlx does not know, Elasticsearch credentials), and none of them appears
//! in anything it prints, on a clean run or on a start that fails. Every binary's settings, logged whole at start,
//! are checked the same way with Kafka credentials planted in their options.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use shop_testkit::TestDatabase;
use uuid::Uuid;

use crate::helpers::shop_binary;

const USERINFO_PASSWORD: &str = "planted-userinfo-password";
const QUERY_PASSWORD: &str = "planted-query-password";
const UNKNOWN_PARAMETER: &str = "planted-sslpassword";
const ELASTICSEARCH_PASSWORD: &str = "planted-elastic-password";
const ELASTICSEARCH_API_KEY: &str = "planted-elastic-api-key";

const PLANTED: [&str; 5] =
    [USERINFO_PASSWORD, QUERY_PASSWORD, UNKNOWN_PARAMETER, ELASTICSEARCH_PASSWORD, ELASTICSEARCH_API_KEY];

/// The test Postgres server's URL with the planted secrets: a userinfo password and a `?password=` (ignored by a
/// trust-auth server, as on this machine; left out when the server's URL already carries a real password), and
/// an `sslpassword`, which sqlx does not support.
fn postgres_url_with_secrets() -> String {
    let server = shop_testkit::postgres_server_url();
    let (scheme, rest) = server.split_once("://").expect("a URL");
    let with_password = match rest.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => None,
        Some((user, host)) => Some(format!("{scheme}://{user}:{USERINFO_PASSWORD}@{host}")),
        None => Some(format!("{scheme}://postgres:{USERINFO_PASSWORD}@{rest}")),
    };
    match with_password {
        Some(url) => format!("{url}?password={QUERY_PASSWORD}&sslpassword={UNKNOWN_PARAMETER}"),
        None => format!("{server}?sslpassword={UNKNOWN_PARAMETER}"),
    }
}

fn elasticsearch_url_with_secrets() -> String {
    // Nothing listens on port 1: a start with the elasticsearch backend fails there.
    format!("http://elastic:{ELASTICSEARCH_PASSWORD}@127.0.0.1:1/?api_key={ELASTICSEARCH_API_KEY}")
}

/// What a run printed, stdout and stderr together, and how it ended.
struct Run {
    output: String,
    status: ExitStatus,
}

/// Runs `shop` with the planted secrets, at debug level, on fresh databases (dropped afterwards) and port 0
/// everywhere. With `stop_once_running`, it is sent SIGTERM once it says it is running; otherwise it is expected
/// to stop on its own.
fn run_shop(extra_env: &[(&str, String)], stop_once_running: bool) -> Run {
    let prefix = format!("test_{}_", Uuid::now_v7().simple());
    // The databases' pools want a runtime; the shop itself runs in its own process.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = runtime.enter();
    let _databases: Vec<TestDatabase> = ["account", "catalog", "order"]
        .iter()
        .map(|name| TestDatabase::adopt(&format!("{prefix}{name}")))
        .collect();
    let mut command = shop_binary(&prefix);
    command
        .env("POSTGRES_URL", postgres_url_with_secrets())
        .env("ELASTICSEARCH_URL", elasticsearch_url_with_secrets())
        .envs(extra_env.iter().map(|(name, value)| (*name, value)));
    let mut child = command.spawn().expect("Failed to start the shop binary");

    let output = Arc::new(Mutex::new(String::new()));
    let running = Arc::new(Mutex::new(false));
    let readers = [
        collect(child.stdout.take().unwrap(), &output, Some(&running)),
        collect(child.stderr.take().unwrap(), &output, None),
    ];
    if stop_once_running {
        wait_until(&mut child, || *running.lock().unwrap());
        // SIGTERM, as an operator or an orchestrator stops it (the child is this test's own process).
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
    }
    let status = wait_until(&mut child, || false).expect("the shop to stop");
    readers.into_iter().for_each(|reader| reader.join().unwrap());
    let output = output.lock().unwrap().clone();
    Run { output, status }
}

/// Copies `stream` into `output` line by line, noting when the shop says it is running.
fn collect(
    stream: impl Read + Send + 'static,
    output: &Arc<Mutex<String>>,
    running: Option<&Arc<Mutex<bool>>>,
) -> thread::JoinHandle<()> {
    let (output, running) = (output.clone(), running.cloned());
    thread::spawn(move || {
        // Bytes, not `lines()`: a line that is not UTF-8 must be scanned too, not end the reading.
        for line in BufReader::new(stream).split(b'\n') {
            let line = String::from_utf8_lossy(&line.unwrap_or_default()).into_owned();
            if line.contains("The shop is running") {
                running.iter().for_each(|running| *running.lock().unwrap() = true);
            }
            let mut output = output.lock().unwrap();
            output.push_str(&line);
            output.push('\n');
        }
    })
}

/// Waits (at most two minutes) until `condition` holds or the child exits; returns its exit status if it exited.
fn wait_until(child: &mut Child, condition: impl Fn() -> bool) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if condition() {
            return None;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the shop neither got there nor stopped within two minutes");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn assert_no_planted_secret(output: &str) {
    for secret in PLANTED {
        let line = output.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "planted secret {secret} in the output: {}", line.unwrap_or_default());
    }
}

#[test]
fn a_running_shop_logs_no_planted_secret() {
    // Act
    let run = run_shop(&[], true);

    // Assert: a clean run that logged its settings and URLs, redacted
    assert!(run.status.success(), "{:?}\n{}", run.status, run.output);
    assert!(run.output.contains("Starting the shop."), "{}", run.output);
    assert!(run.output.contains(":********@"), "the redacted URLs were logged:\n{}", run.output);
    assert!(run.output.contains("api_key=********"), "{}", run.output);
    println!("Scanned {} lines of a running shop's output.", run.output.lines().count());
    assert_no_planted_secret(&run.output);
}

#[test]
fn a_shop_that_cannot_reach_elasticsearch_reports_it_without_the_credentials() {
    // Act
    let run = run_shop(&[("CATALOG_SEARCH", "elasticsearch".to_owned())], false);

    // Assert: the start failed, saying why
    assert!(!run.status.success(), "{}", run.output);
    assert!(run.output.contains("Failed to reach Elasticsearch"), "{}", run.output);
    assert_no_planted_secret(&run.output);
}

#[test]
fn a_malformed_elasticsearch_url_is_reported_without_its_password() {
    let malformed = format!("http://elastic:{ELASTICSEARCH_PASSWORD}@[::1/?api_key={ELASTICSEARCH_API_KEY}");

    let run =
        run_shop(&[("CATALOG_SEARCH", "elasticsearch".to_owned()), ("ELASTICSEARCH_URL", malformed)], false);

    assert!(!run.status.success(), "{}", run.output);
    assert!(run.output.contains("Invalid Elasticsearch URL"), "{}", run.output);
    assert_no_planted_secret(&run.output);
}

#[test]
fn every_binarys_settings_log_no_planted_secret() {
    // Arrange: each binary's command line as its main logs it at start, with a secret in every URL and Kafka option
    // that can hold one
    let database = "postgres://shop:planted-1@db/shop?password=planted-2";
    let kafka = [
        "--kafka-option=sasl.password=planted-3",
        "--kafka-option=ssl.key.pem=planted-4",
        "--kafka-option=sasl.oauthbearer.config=clientSecret=planted-5",
        "--kafka-option=ssl.key.password=planted-6",
    ];
    let elasticsearch = "--elasticsearch-url=https://elastic:planted-7@es/?api_key=planted-8";
    let with = |binary: &str, arguments: &[&str]| -> Vec<String> {
        [binary].iter().chain(arguments).chain(&kafka).map(|argument| argument.to_string()).collect()
    };
    let database_flag = format!("--database-url={database}");

    // Act
    let logged = [
        format!(
            "{:?}",
            shop::Cli::try_parse_from(["shop", &format!("--postgres-url={database}"), elasticsearch])
        ),
        format!(
            "{:?}",
            shop_account::config::Cli::try_parse_from(with("account", &[&database_flag, "republish"]))
        ),
        format!(
            "{:?}",
            shop_catalog::config::Cli::try_parse_from(with("catalog", &[&database_flag, elasticsearch]))
        ),
        format!("{:?}", shop_order::config::Cli::try_parse_from(with("order", &[&database_flag]))),
        format!("{:?}", shop_relay::config::Settings::try_parse_from(with("relay", &[&database_flag]))),
    ];

    // Assert
    for settings in logged {
        assert!(settings.starts_with("Ok("), "{settings}");
        assert!(settings.contains("********"), "{settings}");
        for i in 1..=8 {
            assert!(!settings.contains(&format!("planted-{i}")), "planted-{i} in {settings}");
        }
    }
}
