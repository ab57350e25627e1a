//! Marks builds made with an Elasticsearch at hand (`ELASTICSEARCH_URL` set), so the Elasticsearch integration
//! tests run there and show as ignored, with the reason, everywhere else.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(elasticsearch)");
    println!("cargo::rerun-if-env-changed=ELASTICSEARCH_URL");
    if std::env::var("ELASTICSEARCH_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=elasticsearch");
    }
}
