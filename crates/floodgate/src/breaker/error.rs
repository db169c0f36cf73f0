//! Errors of the circuit breaker.

use std::time::Duration;

use tokio::time::Instant;

/// Why a call through a breaker did not produce the operation's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker is open: the operation was not run.
    #[error("circuit breaker {name} is open{}", retry_hint(.until))]
    Open {
        /// The breaker's name.
        name: super::BreakerName,
        /// When the open wait ends and a call may be let through again (`None` while forced
        /// open). A deadline rather than a duration, so that rejecting a call reads no clock:
        /// [`retry_after`](BreakerError::retry_after) gives the wait from now.
        until: Option<Instant>,
    },
    /// The call took longer than the breaker's call timeout (counted as a failure).
    #[error("call timed out after {0:?}")]
    Timeout(Duration),
    /// The operation failed.
    #[error(transparent)]
    Inner(E),
}

fn retry_hint(until: &Option<Instant>) -> String {
    match until {
        Some(t) => format!(
            "; retry in {:?}",
            t.saturating_duration_since(Instant::now())
        ),
        None => " (forced open)".to_owned(),
    }
}

impl<E> BreakerError<E> {
    /// Whether the operation was not run because the breaker was open.
    pub fn is_open(&self) -> bool {
        matches!(self, BreakerError::Open { .. })
    }

    /// For an open breaker, how long from now until a call may be let through again (zero
    /// once the wait has passed); `None` while forced open and for the other errors.
    ///
    /// ```
    /// use std::time::Duration;
    /// use floodgate::breaker::{CircuitBreaker, OpenWait};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::fixed(Duration::from_secs(30)))
    ///     .build()
    ///     .unwrap();
    /// let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    /// let err = breaker.call(|| async { Ok::<(), &str>(()) }).await.unwrap_err();
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BreakerError::Open { until: Some(t), .. } => {
                Some(t.saturating_duration_since(Instant::now()))
            }
            _ => None,
        }
    }

    /// The operation's own error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            _ => None,
        }
    }
}

/// A breaker setting that can't be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// A rate threshold outside `(0, 1]`.
    #[error("{setting} must be in (0, 1], got {value}")]
    Rate {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count that must be at least 1 was 0 (or too large).
    #[error("{setting} must be between 1 and {max}, got {value}")]
    Count {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A duration that must be positive was zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// Which setting.
        setting: &'static str,
    },
    /// The open-wait growth factor was below 1.
    #[error("open_wait factor must be at least 1.0, got {0}")]
    Factor(f64),
    /// The jitter fraction was outside `[0, 1)`.
    #[error("jitter must be in [0, 1), got {0}")]
    Jitter(f64),
}
