//! [`Retry`]: runs an operation again on failure, per a policy, a budget and deadlines.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::RetryBudget;
use super::decision::RetryDecision;
use super::error::{AttemptError, RetryError};
use super::policy::{ExponentialBackoff, RetryPolicy};

/// A retry strategy: a [`RetryPolicy`] plus an optional per-attempt timeout, overall
/// deadline and shared [`RetryBudget`]. Cheap to clone when the policy is.
#[derive(Debug, Clone)]
pub struct Retry<P = ExponentialBackoff> {
    policy: P,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    budget: Option<RetryBudget>,
}

impl Default for Retry<ExponentialBackoff> {
    fn default() -> Self {
        Retry::new(ExponentialBackoff::default())
    }
}

impl<P: RetryPolicy> Retry<P> {
    /// Retries per `policy`, without timeouts or budget.
    pub fn new(policy: P) -> Self {
        Retry {
            policy,
            attempt_timeout: None,
            deadline: None,
            budget: None,
        }
    }

    /// Cancel an attempt that takes longer than `timeout` (it counts as a retryable failure).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Give up once `deadline` has passed since the first attempt started, cancelling the
    /// attempt in flight.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Draw every retry from `budget` (shared with other callers).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Runs `op` until it succeeds or retrying ends; every error is retryable.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the attempt in flight and makes no further attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use floodgate::retry::{ExponentialBackoff, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let calls = AtomicU32::new(0);
    /// let retry = Retry::new(ExponentialBackoff::new(Duration::from_millis(10)).max_attempts(5));
    /// let value = retry
    ///     .run(|| async {
    ///         if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err("flaky") } else { Ok(7) }
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 3));
    /// # }
    /// ```
    pub async fn run<F, Fut, T, E>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_classified(op, |_| RetryDecision::Retry).await
    }

    /// Runs `op`, asking `classify` whether each error is worth another attempt (and whether
    /// the server asked for a delay).
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Self::run).
    pub async fn run_classified<F, Fut, T, E, C>(
        &self,
        mut op: F,
        mut classify: C,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> RetryDecision,
    {
        // The clock is read only when something needs it: the first attempt of the common
        // case (it succeeds) then costs no clock read at all.
        let start = (self.deadline.is_some() || self.policy.uses_elapsed()).then(Instant::now);
        let deadline = self.deadline.zip(start).map(|(d, s)| s + d);
        if let Some(b) = &self.budget {
            b.deposit();
        }
        let mut attempts = 0u32;
        let mut previous = None;
        loop {
            attempts += 1;
            let attempt = self.attempt(op(), deadline);
            let (error, decision) = match attempt.await {
                Attempt::Done(Ok(v)) => return Ok(v),
                Attempt::Done(Err(e)) => {
                    let d = classify(&e);
                    (AttemptError::Failed(e), d)
                }
                Attempt::TimedOut(t) => (AttemptError::TimedOut(t), RetryDecision::Retry),
                Attempt::Deadline => {
                    return Err(RetryError::DeadlineExceeded {
                        attempts,
                        last: None,
                    });
                }
            };
            let floor = match decision {
                RetryDecision::DoNotRetry => {
                    return Err(RetryError::Permanent {
                        attempts,
                        last: error,
                    });
                }
                RetryDecision::Retry => None,
                RetryDecision::RetryAfter(d) => Some(if self.policy.retry_after_exceeds_cap() {
                    d
                } else {
                    d.min(self.policy.max_delay())
                }),
            };
            let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
            let Some(delay) = self.policy.next_delay(attempts, elapsed, previous) else {
                return Err(RetryError::Exhausted {
                    attempts,
                    last: error,
                });
            };
            let delay = floor.map_or(delay, |f| delay.max(f));
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return Err(RetryError::DeadlineExceeded {
                    attempts,
                    last: Some(error),
                });
            }
            if let Some(b) = &self.budget
                && !b.withdraw()
            {
                tracing::debug!(attempts, "retry refused: budget exhausted");
                return Err(RetryError::BudgetExhausted {
                    attempts,
                    last: error,
                });
            }
            tracing::debug!(attempts, ?delay, "attempt failed; retrying");
            tokio::time::sleep(delay).await;
            previous = Some(delay);
        }
    }

    async fn attempt<Fut, T, E>(&self, fut: Fut, deadline: Option<Instant>) -> Attempt<Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let per_attempt = self.attempt_timeout.map(|t| (Instant::now() + t, t));
        let (until, cause) = match (per_attempt, deadline) {
            (None, None) => return Attempt::Done(fut.await),
            (Some((a, t)), Some(d)) if a < d => (a, Some(t)),
            (Some((a, t)), None) => (a, Some(t)),
            (_, Some(d)) => (d, None),
        };
        match tokio::time::timeout_at(until, fut).await {
            Ok(r) => Attempt::Done(r),
            Err(_) => match cause {
                Some(t) => Attempt::TimedOut(t),
                None => Attempt::Deadline,
            },
        }
    }
}

enum Attempt<R> {
    Done(R),
    TimedOut(Duration),
    Deadline,
}
