//! Marks builds whose tests run against an external broker (`KAFKA_BROKERS` set): tests that need the embedded one
//! (the proxy fronts a single broker) show as ignored, with the reason, there.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(external_kafka)");
    println!("cargo::rerun-if-env-changed=KAFKA_BROKERS");
    if std::env::var("KAFKA_BROKERS").is_ok_and(|brokers| !brokers.is_empty()) {
        println!("cargo::rustc-cfg=external_kafka");
    }
}
