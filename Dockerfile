# One image with every shop binary (account, catalog, order, relay, gateway, shop); docker-compose.yaml picks the
# binary per service. The workspace is built once, in release mode, with Cargo's caches kept between builds.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is compiled from source by rdkafka-sys (make, a C compiler and perl come with this image); protobuf
# is compiled by protox (pure Rust): no system protoc. npm fetches the playground's pinned assets (gateway/build.rs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/root/.npm \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin account --bin catalog --bin order --bin relay --bin gateway --bin shop \
    && mkdir -p /out \
    && cp target/release/account target/release/catalog target/release/order \
          target/release/relay target/release/gateway target/release/shop /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 shop
COPY --from=build /out/ /usr/local/bin/
USER shop
ENV LOG_FORMAT=json RUST_LOG=info
CMD ["shop", "--help"]
