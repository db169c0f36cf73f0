//! What a worker has done so far: counters read without a lock, like the primitives' stats.
//!
//! The event stream ([`WorkerHandle::events`](super::WorkerHandle::events)) drops events for a
//! reader that falls behind; these counters never miss one. They are kept in one place, the
//! worker's event emitter, so every path that reports an outcome counts it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::events::WorkerEvent;

/// A snapshot of a worker's counters, from [`WorkerHandle::stats`](super::WorkerHandle::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs claimed from the store.
    pub claimed: u64,
    /// Handler runs started.
    pub started: u64,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Jobs sent dead (attempts used up, a permanent error, an undecodable payload).
    pub dead: u64,
    /// Jobs cancelled while running.
    pub cancelled: u64,
    /// Jobs put back without spending an attempt (snoozed by their handler, refused by a
    /// half-open breaker, or released at the shutdown deadline).
    pub snoozed: u64,
    /// Outcomes not written because the job's lease was lost.
    pub lease_lost: u64,
    /// Store operations that failed (claims, heartbeats, outcome writes).
    pub store_errors: u64,
    /// Jobs running now.
    pub running: u64,
    /// Jobs claimed ahead of a free permit, waiting to start now (see
    /// [`WorkerBuilder::claim_ahead`](super::WorkerBuilder::claim_ahead)).
    pub prefetched: u64,
    /// Chances to claim the worker let pass: no permit free for a kind group (every slot busy,
    /// the kinds at their limits), or memory above the high-water mark. A worker that never
    /// hoards shows it here, one passed-up chance per claim round while it is full.
    pub claims_passed_up: u64,
    /// Jobs the worker held and gave back to the queue before starting them: they would not
    /// start soon, the worker stalled, or it stopped. The next claim (by any worker) takes the
    /// best there is, so each of them may start out of priority order.
    pub gave_back: u64,
}

/// The live counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    claimed: AtomicU64,
    started: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    cancelled: AtomicU64,
    snoozed: AtomicU64,
    lease_lost: AtomicU64,
    store_errors: AtomicU64,
    passed_up: AtomicU64,
    gave_back: AtomicU64,
}

impl Counters {
    /// Counts what `event` reports.
    pub(super) fn count(&self, event: &WorkerEvent) {
        let counter = match event {
            WorkerEvent::Started { .. } => &self.started,
            WorkerEvent::Succeeded { .. } => &self.succeeded,
            WorkerEvent::Failed { .. } => &self.retried,
            WorkerEvent::Dead { .. } => &self.dead,
            WorkerEvent::Cancelled { .. } => &self.cancelled,
            WorkerEvent::Snoozed { .. } => &self.snoozed,
            WorkerEvent::LeaseLost { .. } => &self.lease_lost,
            WorkerEvent::StoreError { .. } => &self.store_errors,
            _ => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Handler runs started so far.
    pub(super) fn started(&self) -> u64 {
        self.started.load(Relaxed)
    }

    /// Counts a chance to claim let pass (full, or memory high).
    pub(super) fn passed_up(&self) {
        self.passed_up.fetch_add(1, Relaxed);
    }

    /// Counts `n` held jobs given back.
    pub(super) fn gave_back(&self, n: usize) {
        self.gave_back.fetch_add(n as u64, Relaxed);
    }

    /// Counts `n` claimed jobs.
    pub(super) fn claimed(&self, n: usize) {
        self.claimed.fetch_add(n as u64, Relaxed);
    }

    pub(super) fn snapshot(&self, running: usize, prefetched: usize) -> WorkerStats {
        WorkerStats {
            claimed: self.claimed.load(Relaxed),
            started: self.started.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dead: self.dead.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            snoozed: self.snoozed.load(Relaxed),
            lease_lost: self.lease_lost.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            running: running as u64,
            prefetched: prefetched as u64,
            claims_passed_up: self.passed_up.load(Relaxed),
            gave_back: self.gave_back.load(Relaxed),
        }
    }
}
