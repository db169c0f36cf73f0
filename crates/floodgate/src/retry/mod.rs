//! Retry with exponential backoff, jitter, Retry-After, a shared budget and deadlines.
//!
//! * [`Retry`] runs an async operation again on failure per a [`RetryPolicy`] — usually
//!   [`ExponentialBackoff`] with [`Jitter`] — with an optional per-attempt timeout, overall
//!   deadline and [`RetryBudget`].
//! * A classifier decides per error ([`RetryDecision`]): retry, retry not before a server's
//!   `Retry-After` (the next delay is at least that), or never (permanent errors).
//! * The budget caps retries at a fraction of the traffic, so retries can't become a storm.
//! * [`layer::RetryLayer`] does the same for Tower services with cloneable requests.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::retry::{ExponentialBackoff, Jitter, Retry, RetryBudget, RetryDecision, RetryError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let budget = RetryBudget::new(0.2, 10);
//! let retry = Retry::new(
//!     ExponentialBackoff::new(Duration::from_millis(50))
//!         .cap(Duration::from_secs(5))
//!         .max_attempts(4)
//!         .jitter(Jitter::Proportional(0.25)),
//! )
//! .attempt_timeout(Duration::from_secs(2))
//! .deadline(Duration::from_secs(10))
//! .budget(budget);
//!
//! // A 401 is never retried.
//! let err = retry
//!     .run_classified(|| async { Err::<(), u16>(401) }, |s| RetryDecision::from_http_status(*s, None))
//!     .await
//!     .unwrap_err();
//! assert!(matches!(err, RetryError::Permanent { attempts: 1, .. }));
//! # }
//! ```

mod budget;
mod decision;
mod error;
mod policy;
mod run;

#[cfg(feature = "tower")]
pub mod layer;

pub use budget::RetryBudget;
pub use decision::RetryDecision;
pub use error::{AttemptError, RetryError};
pub use policy::{ExponentialBackoff, Jitter, RetryPolicy};
pub use run::Retry;

/// Runs `op` until it succeeds or `policy` gives up; every error is retryable. The short form
/// of [`Retry::new(policy).run(op)`](Retry::run).
///
/// # Cancel safety
///
/// Dropping the future cancels the attempt in flight and makes no further attempt.
///
/// ```
/// use std::time::Duration;
/// use floodgate::retry::{retry, ExponentialBackoff};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let answer = retry(ExponentialBackoff::new(Duration::from_millis(10)), || async { Ok::<_, ()>(42) }).await;
/// assert_eq!(answer, Ok(42));
/// # }
/// ```
pub async fn retry<P, F, Fut, T, E>(policy: P, op: F) -> Result<T, RetryError<E>>
where
    P: RetryPolicy,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    Retry::new(policy).run(op).await
}
