//! What a worker reports as it runs, through [`WorkerHandle::events`](super::WorkerHandle::events).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::JobId;

/// One thing that happened in a worker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// A claimed job's handler started.
    Started {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// The handler succeeded and the completion was recorded.
    Succeeded {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
        /// How long the handler ran.
        took: Duration,
    },
    /// The attempt failed; the job will run again at `retry_at`.
    Failed {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
        /// The error.
        error: String,
        /// When it runs again.
        retry_at: DateTime<Utc>,
    },
    /// The job went dead (attempts used up, or a permanent error).
    Dead {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
        /// The last error.
        error: String,
    },
    /// The job was put back without spending an attempt (snoozed by its handler, refused by
    /// an open breaker, or released at shutdown).
    Snoozed {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
        /// When it runs again.
        until: DateTime<Utc>,
    },
    /// The job ended cancelled (cancellation was asked for while it ran).
    Cancelled {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
    },
    /// The lease was lost (rescued by another node after it expired, or taken over): the
    /// handler's result was not written.
    LeaseLost {
        /// The job.
        id: JobId,
        /// Its kind.
        kind: String,
    },
    /// Resident memory passed the high-water mark: claiming stopped.
    MemoryHigh {
        /// Resident set size in bytes.
        rss: u64,
    },
    /// Resident memory fell below the low-water mark: claiming resumed.
    MemoryNormal {
        /// Resident set size in bytes.
        rss: u64,
    },
    /// A kind's circuit breaker changed state (open: the kind is not claimed).
    BreakerChanged {
        /// The kind.
        kind: String,
        /// The state it left.
        from: floodgate::breaker::State,
        /// The state it entered.
        to: floodgate::breaker::State,
        /// Why.
        reason: String,
    },
    /// Protective mode of a watched breaker registry moved the worker's limit (see
    /// [`WorkerBuilder::watch_registry`](super::WorkerBuilder::watch_registry)).
    ProtectiveMode {
        /// Breakers open now.
        open: usize,
        /// The new limit.
        limit: usize,
        /// The limit without protection.
        base: usize,
    },
    /// The store could not be reached for a claim or a completion; the worker retries.
    StoreError {
        /// What failed.
        error: String,
    },
}
