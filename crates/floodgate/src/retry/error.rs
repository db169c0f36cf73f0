//! [`RetryError`]: why retrying ended without a value.

use std::time::Duration;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError<E> {
    /// The operation returned this error.
    #[error(transparent)]
    Failed(E),
    /// The attempt took longer than the per-attempt timeout and was cancelled.
    #[error("attempt timed out after {0:?}")]
    TimedOut(Duration),
}

impl<E> AttemptError<E> {
    /// The operation's error, unless the attempt timed out.
    pub fn into_inner(self) -> Option<E> {
        match self {
            AttemptError::Failed(e) => Some(e),
            AttemptError::TimedOut(_) => None,
        }
    }
}

/// Why [`Retry::run`](super::Retry::run) gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError<E> {
    /// The policy allows no more attempts (count or elapsed time).
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: AttemptError<E>,
    },
    /// The error is permanent; it was not retried.
    #[error("permanent error after {attempts} attempts: {last}")]
    Permanent {
        /// Attempts made.
        attempts: u32,
        /// The error.
        last: AttemptError<E>,
    },
    /// The shared retry budget is spent, so this caller did not retry (protecting the
    /// dependency from a retry storm).
    #[error("not retried, retry budget exhausted, after {attempts} attempts: {last}")]
    BudgetExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: AttemptError<E>,
    },
    /// The overall deadline passed (or the next delay would pass it).
    #[error("deadline exceeded after {attempts} attempts{}", last.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    DeadlineExceeded {
        /// Attempts made (an attempt cut off by the deadline counts).
        attempts: u32,
        /// The last completed attempt's error, if any completed.
        last: Option<AttemptError<E>>,
    },
}

impl<E> RetryError<E> {
    /// The last error of the operation itself, if there was one.
    pub fn into_last(self) -> Option<E> {
        match self {
            RetryError::Exhausted { last, .. }
            | RetryError::Permanent { last, .. }
            | RetryError::BudgetExhausted { last, .. } => last.into_inner(),
            RetryError::DeadlineExceeded { last, .. } => last.and_then(AttemptError::into_inner),
        }
    }

    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Exhausted { attempts, .. }
            | RetryError::Permanent { attempts, .. }
            | RetryError::BudgetExhausted { attempts, .. }
            | RetryError::DeadlineExceeded { attempts, .. } => *attempts,
        }
    }
}
