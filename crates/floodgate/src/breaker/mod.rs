//! Circuit breakers: stop calling a dependency that keeps failing, test it again after a
//! wait, and close when it has recovered.
//!
//! A [`CircuitBreaker`] counts call outcomes over a sliding window (the last N calls, or the
//! last T seconds) and opens when, after a minimum number of calls, the failure rate or the
//! slow-call rate reaches its threshold, or after N failures in a row. While open, calls fail
//! at once with [`BreakerError::Open`], which tells when to retry ([`BreakerError::retry_after`]). After the open wait, half-open
//! lets exactly `half_open_probes` calls through; if they all succeed the breaker closes, if
//! one fails it re-opens for longer (`base * factor^n`, capped, with jitter), and a close
//! resets the growth.
//!
//! Outcomes are classified ([`Outcome`]): `Ignored` results (rate-limited, cancelled) do not
//! count, `Permanent` ones count as failures and tell retry layers not to retry.
//!
//! [`BreakerRegistry`] keeps breakers by name, bounded, with a health report and a
//! *protective mode* that shrinks a linked [`Limiter`](crate::Limiter) while many breakers
//! are open.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::breaker::{BreakerError, CircuitBreaker, OpenWait, State};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder()
//!     .name("payments")
//!     .failure_rate(0.5, 4)                       // 50% of at least 4 calls
//!     .open_wait(OpenWait::fixed(Duration::from_secs(10)))
//!     .half_open_probes(1)
//!     .build()
//!     .unwrap();
//!
//! for ok in [true, false, true, false] {
//!     let _ = breaker.call(|| async move { if ok { Ok(()) } else { Err("timeout") } }).await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let rejected = breaker.call(|| async { Ok::<_, &str>(()) }).await;
//! assert!(matches!(rejected, Err(BreakerError::Open { .. })));
//!
//! tokio::time::sleep(Duration::from_secs(10)).await;
//! breaker.call(|| async { Ok::<_, &str>(()) }).await.unwrap(); // the probe succeeds
//! assert_eq!(breaker.state(), State::Closed);
//! # }
//! ```
//!
//! The engine and its invariants are described in `engine.rs`.

mod circuit;
mod config;
mod engine;
mod error;
mod events;
mod name;
mod open_timer;
mod outcome;
mod permit;
mod registry;
mod stats;
mod window;

#[cfg(all(test, floodgate_loom))]
mod loom_tests;

#[cfg(feature = "tower")]
pub mod layer;

pub use circuit::CircuitBreaker;
pub use config::{
    BreakerBuilder, BreakerConfig, MAX_WINDOW_CALLS, OpenWait, TripPolicy, WindowKind,
};
pub use error::{BreakerConfigError, BreakerError};
pub use events::{BreakerEvent, State};
pub use name::BreakerName;
pub use outcome::Outcome;
pub use permit::CallPermit;
pub use registry::{
    BreakerRegistry, BreakerRegistryBuilder, Health, HealthReport, ProtectiveMode, RegistryError,
    RegistryEvent, UnknownNames,
};
pub use stats::BreakerStats;
