//! What every shop process shares, so that each service crate holds only its own domain.
//!
//! - [`telemetry`]: log setup (text or JSON, filtered by `RUST_LOG`) and trace export over OTLP (the `OTEL_*`
//!   variables); [`trace`]: the bridge between the W3C context the shop propagates and the exported spans, and the
//!   messaging spans of producers and consumers.
//! - [`shutdown`]: the Ctrl-C/SIGTERM future every long-running part stops on.
//! - [`supervisor`]: runs a process's server and background parts together, restarting a background part that
//!   fails; [`health`]: how each part is doing, for gRPC health checks and HTTP readiness.
//! - [`backoff`]: the exponential backoff every retry loop waits with.
//! - [`postgres`] (feature `postgres`): connecting at start with retry and backoff, creating the database if
//!   missing, and the URL type that keeps passwords out of logs.
//! - [`kafka`] (feature `kafka`): Kafka client settings, turned into an rdkafka `ClientConfig` in one place,
//!   and a client context that sends librdkafka's logs and errors to `tracing`.
//! - [`grpc`]: serving a tonic service with health, reflection, timeouts and per-request spans; lazy client
//!   channels; reading the caller's trace context; the message size limit every server and client shares
//!   ([`limit_message_sizes!`]).
//! - [`error`]: [`ServiceError`], the error every service returns, and its one mapping to `tonic::Status`.
//! - [`identity`]: the end user a call is made for, as the gateway passes it to the services in metadata.
//! - [`ids`]: parsing ids and converting timestamps at the gRPC edge.
//! - [`redact`]: the one rule that keeps passwords, tokens and keys in URLs and client options out of logs and
//!   errors.
//! - [`progress`]: progress of long work (a bar with events/s on a terminal, plain lines otherwise).
//! - [`overload`]: load shedding, a cap on the requests a process serves at once.
//! - [`pagination`]: `skip`/`take` validation with a default and a maximum page size.
//! - [`Allocator`]: the memory allocator the shop's binaries declare as their global one (all but the gateway's).
//! - [`metrics`]: the process's one Prometheus registry, `GET /metrics` to serve it, the gRPC server metrics and
//!   (feature `postgres`) the connection pools' gauges.

pub mod backoff;
pub mod error;
pub mod grpc;
pub mod health;
pub mod identity;
pub mod ids;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod overload;
pub mod pagination;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod progress;
pub mod redact;
pub mod shutdown;
pub mod supervisor;
pub mod telemetry;
pub mod trace;

pub use error::{FieldViolation, ServiceError};

/// The allocator every shop binary but the gateway declares (`#[global_allocator] static ALLOCATOR:
/// shop_platform::Allocator = shop_platform::Allocator;` in its `main.rs`): mimalloc. The shop's hot paths
/// allocate small, short-lived buffers on one worker thread and free them on another (a record decoded by the
/// read-ahead and applied by a lane, a request's frames built by hyper and dropped by tonic), which glibc's malloc
/// serves through locked arenas: it was about a tenth of a replay's CPU and a fifth of the in-process services'
/// under `createOrder`. With mimalloc's thread-local free lists a replay spends 6.3–6.5 µs per event against
/// 7.5–7.9 (`shop-bench --only replay`).
pub use mimalloc::MiMalloc as Allocator;
