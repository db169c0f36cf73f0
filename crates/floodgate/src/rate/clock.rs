//! [`RateClock`]: the clock a rate limiter reads.
//!
//! A rate check is a clock read and one compare-and-swap, so the clock is most of its cost.
//! The default, [`RateClock::Fast`], reads the CPU's time-stamp counter through
//! [quanta](https://docs.rs/quanta) (scaled to nanoseconds; the OS's monotonic clock where
//! there is no usable counter). [`RateClock::Tokio`] reads `tokio::time::Instant`, which
//! follows a paused Tokio clock (`#[tokio::test(start_paused = true)]`,
//! `tokio::time::advance`): choose it in tests that expect a limiter to move with paused time.
//!
//! Waiting never spins on either clock: `until_ready` takes its cell at once and sleeps until
//! the cell is due (giving it back if the wait is cancelled), so even a fast-clock limiter in a
//! paused-time test waits a bounded number of times, not in a loop.
//!
//! ```
//! use floodgate::rate::{Quota, RateClock, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // In a paused-time test: the limiter follows tokio's clock.
//! let limiter = RateLimiter::new(Quota::per_second(2).unwrap().burst(1).unwrap())
//!     .with_clock(RateClock::Tokio);
//! limiter.check().unwrap();
//! assert!(limiter.check().is_err());
//! tokio::time::advance(std::time::Duration::from_millis(500)).await;
//! assert!(limiter.check().is_ok());
//! # }
//! ```

/// Which clock a rate limiter reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateClock {
    /// The CPU's time-stamp counter (through quanta): the fastest read, the default.
    #[default]
    Fast,
    /// Tokio's clock: follows paused time, for deterministic tests.
    Tokio,
}

/// The clock a limiter reads: nanoseconds since the limiter was built.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    Fast { clock: quanta::Clock, base: u64 },
    Tokio { base: tokio::time::Instant },
}

impl Clock {
    pub(crate) fn new(kind: RateClock) -> Self {
        match kind {
            RateClock::Fast => {
                let clock = quanta::Clock::new();
                let base = clock.raw();
                Clock::Fast { clock, base }
            }
            RateClock::Tokio => Clock::Tokio {
                base: tokio::time::Instant::now(),
            },
        }
    }

    /// Never 0, so that a fresh TAT of 0 is always in the past.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            Clock::Fast { clock, base } => clock.delta_as_nanos(*base, clock.raw()) + 1,
            Clock::Tokio { base } => base.elapsed().as_nanos() as u64 + 1,
        }
    }
}
