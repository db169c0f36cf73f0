//! Errors of the rate limiters.

use std::time::Duration;

use crate::retry::RetryDecision;

/// A rate limiter refused: when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotUntil {
    /// Try again after this long.
    #[error("rate limited; retry in {0:?}")]
    Wait(Duration),
    /// More cells were asked for at once than the burst allows: this can never succeed.
    #[error("asked for more cells than the burst of {burst}")]
    Never {
        /// The burst size.
        burst: u32,
    },
}

impl NotUntil {
    /// The wait, as a Retry-After hint (`None` for [`NotUntil::Never`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotUntil::Wait(d) => Some(*d),
            NotUntil::Never { .. } => None,
        }
    }
}

impl From<&NotUntil> for RetryDecision {
    /// A wait becomes `RetryAfter(wait)`; an impossible request is not retried.
    fn from(n: &NotUntil) -> Self {
        match n {
            NotUntil::Wait(d) => RetryDecision::RetryAfter(*d),
            NotUntil::Never { .. } => RetryDecision::DoNotRetry,
        }
    }
}

/// Errors of rate-limit configuration and of the distributed limiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// The quota can't be represented.
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// A keyed limiter needs room for at least one key.
    #[error("max_keys must be at least 1")]
    ZeroKeys,
    /// Over the limit (from a distributed limiter).
    #[error(transparent)]
    Limited(NotUntil),
    /// The shared store (Redis) could not answer in time and the failure policy is `Closed`.
    /// The server maps this to HTTP 503 with code `RATE_LIMIT_SERVICE_ERROR`.
    #[error("rate limit service unavailable: {reason}")]
    Unavailable {
        /// What went wrong (connection refused, timed out, ...).
        reason: String,
    },
    /// The Redis URL or settings are unusable.
    #[error("invalid Redis settings: {0}")]
    Config(String),
}
