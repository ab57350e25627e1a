//! Marks builds whose tests run against an external broker (`KAFKA_BROKERS` set): tests that need the embedded one
//! (taking the broker down, the proxy that fronts a single broker, injected errors) show as ignored, with the reason, there.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(external_kafka)");
    println!("cargo::rerun-if-env-changed=KAFKA_BROKERS");
    if std::env::var("KAFKA_BROKERS").is_ok_and(|brokers| !brokers.is_empty()) {
        println!("cargo::rustc-cfg=external_kafka");
    }
}
