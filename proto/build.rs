//! Compiles the `.proto` contracts with `protox` (a pure-Rust protobuf compiler, so no system `protoc` is needed),
//! writes the descriptor set that gRPC reflection serves, and generates tonic/prost code from it.

use std::{env, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] =
    &["shop/account/v1/account.proto", "shop/catalog/v1/catalog.proto", "shop/order/v1/order.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out_dir.join("shop_descriptor.bin"), descriptors.encode_to_vec())?;

    tonic_prost_build::configure().compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
