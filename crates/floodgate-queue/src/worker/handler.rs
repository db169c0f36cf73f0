//! What a handler is given and what it returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::job::{Job, JobId};

/// A successful run: optionally a result kept on the job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub(crate) result: Option<Value>,
}

impl Outcome {
    /// Done, nothing to keep.
    pub fn done() -> Self {
        Outcome::default()
    }

    /// Done, keeping `result` on the job (status polling shows it).
    pub fn with_result(result: Value) -> Self {
        Outcome {
            result: Some(result),
        }
    }
}

/// Why a run did not succeed, and so what happens next.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Try again: after `after` if given, else after the kind's backoff. Counts an attempt;
    /// the job goes dead when its attempts are used up.
    Retry {
        /// What went wrong (kept as the job's last error).
        message: String,
        /// Overrides the backoff (a server's Retry-After, say).
        after: Option<Duration>,
    },
    /// Never try again: the job goes dead at once with this error (bad input, auth refused).
    Permanent {
        /// What went wrong.
        message: String,
    },
    /// Not now: put the job back until `until` without spending an attempt.
    Snooze {
        /// When to run it again.
        until: DateTime<Utc>,
    },
}

impl JobError {
    /// A retryable failure after the kind's backoff.
    pub fn retry(message: impl fmt::Display) -> Self {
        JobError::Retry {
            message: message.to_string(),
            after: None,
        }
    }

    /// A retryable failure to try again after `after`.
    pub fn retry_after(message: impl fmt::Display, after: Duration) -> Self {
        JobError::Retry {
            message: message.to_string(),
            after: Some(after),
        }
    }

    /// A failure no retry will fix.
    pub fn permanent(message: impl fmt::Display) -> Self {
        JobError::Permanent {
            message: message.to_string(),
        }
    }

    /// Run again in `delay`, without spending an attempt.
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze {
            until: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry { message, .. } | JobError::Permanent { message } => {
                f.write_str(message)
            }
            JobError::Snooze { until } => write!(f, "snoozed until {until}"),
        }
    }
}

impl std::error::Error for JobError {}

/// What a running handler can learn about its run.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) attempt: u32,
    pub(crate) worker_id: Arc<str>,
    pub(crate) stop: CancellationToken,
}

impl JobContext {
    /// The job.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// This run's attempt number (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The worker running it.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Whether the run should stop: cancellation was asked for, the lease was lost, or the
    /// worker is shutting down past its deadline. Whatever the handler returns afterwards is
    /// fenced by the lease anyway.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when the run should stop (see [`is_stopping`](Self::is_stopping)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    pub async fn stopping(&self) {
        self.stop.cancelled().await
    }
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Outcome, JobError>> + Send>>;

/// A registered handler, type-erased.
pub(crate) type Handler = Arc<dyn Fn(Job, JobContext) -> HandlerFuture + Send + Sync>;

pub(crate) fn raw<F, Fut>(f: F) -> Handler
where
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, JobError>> + Send + 'static,
{
    Arc::new(move |job, ctx| Box::pin(f(job, ctx)))
}

/// A handler of a typed payload; a payload that does not decode is a permanent failure.
pub(crate) fn typed<T, F, Fut>(f: F) -> Handler
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, JobError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |job: Job, ctx| {
        let f = f.clone();
        Box::pin(async move {
            let payload = job.payload_as::<T>().map_err(|e| {
                JobError::permanent(format!(
                    "payload of job {} does not decode as {}: {e}",
                    job.id,
                    std::any::type_name::<T>()
                ))
            })?;
            f(payload, ctx).await
        })
    })
}
