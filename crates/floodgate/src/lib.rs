//! Concurrency control and resilience primitives for async Rust.
//!
//! floodgate keeps a service inside its limits. This crate holds the primitives, each a plain
//! async API (and, with the default `tower` feature, a Tower layer):
//!
//! * [`Limiter`]: bounded concurrency with priorities, aging, a bounded queue, acquire
//!   timeouts, leases, run-time resizing, close and drain.
//! * [`adaptive`]: adaptive concurrency limits (AIMD, Vegas, Gradient2) driving a `Limiter`.
//! * [`batch`]: run a function over many items under a limit, results in input order.
//! * [`breaker`]: circuit breakers, a bounded registry with health and protective mode.
//! * [`retry`]: backoff with jitter, Retry-After, a shared retry budget and deadlines.
//! * [`hedge`]: hedged requests against tail latency.
//! * [`flight`]: single-flight, one execution shared by concurrent calls for a key.
//! * [`shutdown`]: graceful shutdown: stop admitting, drain by a deadline, run isolated hooks.
//! * [`processor`]: an in-memory JSON-RPC shaped worker pool with a bounded queue.
//! * [`rate`]: GCRA rate limiting, direct and keyed (bounded), with a Tower layer.
//! * [`isolate`]: run a future with its panic (and an optional timeout) caught as an error.
//!
//! ```
//! use floodgate::{batch, Limiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let limiter = Limiter::new(4);
//! let doubled = batch::run_all(1..=10, &limiter, |n| async move { Ok::<_, String>(n * 2) })
//!     .await
//!     .unwrap();
//! assert_eq!(doubled, (1..=10).map(|n| n * 2).collect::<Vec<_>>());
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod adaptive;
pub mod batch;
pub mod breaker;
pub mod flight;
pub mod hedge;
mod histogram;
pub mod isolate;
pub mod limiter;
mod panic;
pub mod processor;
pub mod rate;
pub mod retry;
pub mod shutdown;
mod sync;

pub use limiter::{
    DrainTimeout, InvalidPriority, Limiter, LimiterBuilder, LimiterError, LimiterStats,
    OwnedPermit, Permit, Priority, Rejected, TryAcquireError,
};
