//! Rate limiting with GCRA: a direct [`RateLimiter`], a bounded [`KeyedRateLimiter`], and a
//! Tower layer.
//!
//! GCRA gives the same results as a token bucket refilled continuously, with one number of
//! state per limiter or key and no refill task. A refusal says how long to wait
//! ([`NotUntil::Wait`]), which converts into a Retry-After hint for [`crate::retry`].
//!
//! Limiters read a fast clock (the CPU's time-stamp counter) by default; tests that pause
//! Tokio's clock build them [`with_clock(RateClock::Tokio)`](RateLimiter::with_clock) (see
//! [`RateClock`]).
//!
//! ```
//! use floodgate::rate::{Quota, RateLimiter};
//! use floodgate::retry::RetryDecision;
//!
//! let api = RateLimiter::new(Quota::per_second(100).unwrap().burst(10).unwrap());
//! for _ in 0..10 {
//!     api.check().unwrap();
//! }
//! let refused = api.check().unwrap_err();
//! assert!(matches!(RetryDecision::from(&refused), RetryDecision::RetryAfter(_)));
//! ```

mod allowance;
mod clock;
mod error;
mod gcra;
mod keyed;

#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "redis")]
pub mod redis;

pub use allowance::Allowance;
pub use clock::RateClock;
pub use error::{NotUntil, RateError};
pub use gcra::{Quota, RateLimiter};
pub use keyed::KeyedRateLimiter;
