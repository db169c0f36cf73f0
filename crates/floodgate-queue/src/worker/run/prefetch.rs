//! Claiming ahead: a bounded buffer of jobs claimed before a permit is free for them, sized by
//! how many jobs the worker starts in about one claim round trip.
//!
//! A claim is a round trip and a commit. When jobs are short, a worker that claims only what
//! it can start now spends most of its time waiting on claims: at a limit of 10 every round is
//! one claim of 10 jobs. Claiming ahead keeps the next jobs at hand: the worker claims its free
//! permits' worth plus *ahead*, the jobs it expects to start while the next claim is in flight,
//! estimated from the observed rate of job starts times the claim round trip (doubled, so the
//! next claim lands before the buffer runs dry), capped by `WorkerBuilder::claim_ahead`
//! (default: the claim batch). A queue of no-op jobs is soon claimed in full batches; a queue
//! of one-second jobs at a limit of 10 is not claimed ahead at all (10 starts a second times a
//! millisecond's round trip rounds down to nothing; at a limit of 1,000 it would be a few).
//!
//! The rules that keep it honest:
//!
//! * **Bounded.** A claim tops the buffer up to `ahead` (at most the cap; a permit taken while
//!   the claim is in flight can leave a few more), and only kinds without a per-kind or
//!   cluster-wide limit are claimed ahead (a buffered job counts as running in the database,
//!   so it would hold a cluster-wide slot it is not using), and none while a kind's breaker is
//!   half-open.
//! * **Priority order.** Buffered jobs start best first (priority, then due time, then id),
//!   merged with each new claim, the moment a permit frees (the finishing job's task starts the
//!   next one itself).
//! * **Leased like running jobs.** Buffered jobs hold a lease, which the heartbeat extends; one
//!   whose lease is lost is dropped from the buffer. After a crash they are rescued when their
//!   leases run out, like any running job (their claim counted an attempt, so one on its last
//!   attempt is rescued as `dead`, as a running one would be).
//! * **Given back at shutdown.** When the worker stops claiming, the buffer is put back to
//!   `pending` at once without spending an attempt (a snooze to now).

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::job::{Job, Lease};

use super::lock;

/// A buffered job, ordered best first.
#[derive(Debug)]
struct Ahead(Job);

impl Ahead {
    /// Higher priority first, then the earlier due time, then the older id.
    fn key(&self) -> (u8, Reverse<chrono::DateTime<chrono::Utc>>, Reverse<i64>) {
        (
            self.0.priority,
            Reverse(self.0.run_at),
            Reverse(self.0.id.0),
        )
    }
}

impl PartialEq for Ahead {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for Ahead {}

impl PartialOrd for Ahead {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ahead {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.key().cmp(&other.key())
    }
}

/// The jobs claimed ahead, best first.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    jobs: Mutex<BinaryHeap<Ahead>>,
}

impl Buffer {
    pub(super) fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        lock(&self.jobs).extend(jobs.into_iter().map(Ahead));
    }

    /// The best buffered job.
    pub(super) fn pop(&self) -> Option<Job> {
        lock(&self.jobs).pop().map(|a| a.0)
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.jobs).len()
    }

    /// Everything buffered, emptied (for shutdown).
    pub(super) fn take_all(&self) -> Vec<Job> {
        std::mem::take(&mut *lock(&self.jobs))
            .into_vec()
            .into_iter()
            .map(|a| a.0)
            .collect()
    }

    /// The leases of the buffered jobs (for the heartbeat).
    pub(super) fn leases(&self) -> Vec<Lease> {
        lock(&self.jobs)
            .iter()
            .filter_map(|a| a.0.lease())
            .collect()
    }

    /// Drops the buffered job holding `lease` (lost).
    pub(super) fn remove(&self, lease: &Lease) {
        lock(&self.jobs).retain(|a| a.0.lease().as_ref() != Some(lease));
    }
}

/// The start rate and claim round trip the buffer is sized from (the claim loop's own).
#[derive(Debug)]
pub(super) struct Estimate {
    cap: usize,
    /// Job starts per second (moving average over windows of at least [`WINDOW`]).
    rate: f64,
    /// The claim round trip, in seconds (moving average).
    round_trip: f64,
    window_start: Instant,
    started_at_window_start: u64,
}

/// The shortest span a start rate is measured over.
const WINDOW: Duration = Duration::from_millis(5);

/// After this long without a measurement the old rate says nothing.
const STALE: Duration = Duration::from_secs(1);

impl Estimate {
    /// An estimate capped at `cap` jobs ahead (0: never claim ahead).
    pub(super) fn new(cap: usize) -> Self {
        Estimate {
            cap,
            rate: 0.0,
            round_trip: 0.0,
            window_start: Instant::now(),
            started_at_window_start: 0,
        }
    }

    /// Feeds the worker's count of started jobs so far.
    pub(super) fn observe_starts(&mut self, started: u64) {
        let span = self.window_start.elapsed();
        if span < WINDOW {
            return;
        }
        let rate = started.saturating_sub(self.started_at_window_start) as f64 / span.as_secs_f64();
        self.rate = if span > STALE {
            rate
        } else {
            (self.rate + rate) / 2.0
        };
        self.window_start = Instant::now();
        self.started_at_window_start = started;
    }

    /// Feeds the duration of one claim.
    pub(super) fn observe_claim(&mut self, took: Duration) {
        let took = took.as_secs_f64();
        self.round_trip = if self.round_trip == 0.0 {
            took
        } else {
            (self.round_trip * 3.0 + took) / 4.0
        };
    }

    /// How many jobs to hold beyond the free permits now.
    pub(super) fn ahead(&self) -> usize {
        let expected = (self.rate * self.round_trip * 2.0).floor();
        (expected as usize).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, priority: u8, run_at_secs: i64) -> Job {
        let at = chrono::DateTime::from_timestamp(run_at_secs, 0).unwrap();
        serde_json::from_value(serde_json::json!({
            "id": id, "queue": "default", "kind": "k", "payload": null, "priority": priority,
            "run_at": at, "state": "running", "attempt": 1, "max_attempts": 25,
            "lease_owner": "w", "lease_token": id, "lease_expires_at": at,
            "cancel_requested": false, "idempotency_key": null, "ordering_key": null,
            "last_error": null, "result": null, "created_at": at, "updated_at": at,
            "finished_at": null, "started_at": at, "metadata": {}
        }))
        .unwrap()
    }

    #[test]
    fn buffered_jobs_come_out_best_first() {
        let buffer = Buffer::default();
        buffer.push([job(1, 0, 10), job(2, 5, 20), job(3, 5, 10), job(4, 9, 30)]);
        buffer.push([job(5, 5, 10), job(6, 1, 0)]);
        let order: Vec<i64> = std::iter::from_fn(|| buffer.pop())
            .map(|j| j.id.0)
            .collect();
        assert_eq!(order, [4, 3, 5, 2, 6, 1]);
    }

    #[test]
    fn the_estimate_is_the_starts_in_two_round_trips_capped() {
        let mut e = Estimate::new(100);
        assert_eq!(
            e.ahead(),
            0,
            "nothing is claimed ahead before a rate is known"
        );
        e.rate = 10_000.0;
        e.round_trip = 0.001;
        assert_eq!(e.ahead(), 20);
        e.rate = 10.0; // one-second jobs at a limit of 10
        assert_eq!(e.ahead(), 0);
        e.rate = 1_000_000.0;
        assert_eq!(e.ahead(), 100, "capped");
        assert_eq!(Estimate::new(0).ahead(), 0);
    }
}
