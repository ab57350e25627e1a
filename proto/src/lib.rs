//! The gRPC contracts of the shop: `shop.account.v1`, `shop.catalog.v1` and `shop.order.v1`.
//!
//! This crate holds only the `.proto` files (under `proto/`) and the code tonic and prost generate from them at
//! build time. Services convert these types into their own domain types at their gRPC edge; nothing else should
//! travel further than that.
//!
//! Conventions shared by every contract:
//! - identifiers are UUIDv7 strings;
//! - money is integer cents (`*_cents` fields);
//! - timestamps are `google.protobuf.Timestamp`;
//! - pagination is `skip`/`take`, where `take = 0` asks for the server's default page size.

#![allow(unreachable_pub, missing_debug_implementations)]

/// `shop.account.v1`: creating and reading customer accounts.
pub mod account {
    #[allow(clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("shop.account.v1");
    }
}

/// `shop.catalog.v1`: creating, updating, reading and searching products.
pub mod catalog {
    #[allow(clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("shop.catalog.v1");
    }
}

/// `shop.order.v1`: placing and reading orders.
pub mod order {
    #[allow(clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("shop.order.v1");
    }
}

/// The encoded `FileDescriptorSet` of every contract, for the gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shop_descriptor");
