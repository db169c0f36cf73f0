//! Errors of the limiter.

use std::time::Duration;

/// Why an acquire did not get a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The wait queue already held `capacity` waiters; the acquire failed at once.
    #[error("limiter queue is full ({capacity} waiters); shed load or raise max_queue")]
    QueueFull {
        /// The configured `max_queue`.
        capacity: usize,
    },
    /// No permit came within the acquire timeout.
    #[error("no permit within {waited:?}; the limit is saturated")]
    Timeout {
        /// How long the acquire waited.
        waited: Duration,
    },
    /// The limiter is closed (shutting down) and admits nothing new.
    #[error("limiter is closed")]
    Closed,
}

/// Why [`Limiter::try_acquire`](super::Limiter::try_acquire) returned no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryAcquireError {
    /// Every permit is held (or queued waiters come first).
    #[error("no permit is free")]
    NoPermits,
    /// The limiter is closed.
    #[error("limiter is closed")]
    Closed,
}

/// A limiter setting that can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// The concurrency limit was zero.
    #[error("max_concurrency must be at least 1")]
    ZeroLimit,
    /// The concurrency limit is larger than the engine can count.
    #[error("max_concurrency {requested} is above the maximum of {max}")]
    LimitTooLarge {
        /// The value asked for.
        requested: usize,
        /// The largest supported value.
        max: usize,
    },
    /// The queue bound is larger than supported.
    #[error(
        "max_queue {requested} is above the maximum of {max}; leave it unset for an unbounded queue"
    )]
    QueueTooLarge {
        /// The value asked for.
        requested: usize,
        /// The largest supported value.
        max: usize,
    },
    /// A duration setting was zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// Which setting (`acquire_timeout`, `aging`, `lease ttl`).
        setting: &'static str,
    },
}

/// `drain` reached its deadline with permits still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{still_held} permits were still held when the drain deadline passed")]
pub struct DrainTimeout {
    /// Permits held when the deadline passed.
    pub still_held: usize,
}

/// A priority outside `1..=10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("priority {0} is outside 1..=10")]
pub struct InvalidPriority(pub u8);
