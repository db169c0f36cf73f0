//! Claiming ahead: a bounded buffer of jobs claimed before a permit is free for them, sized by
//! how many jobs the worker starts in about one claim round trip.
//!
//! A claim is a round trip and a commit. When jobs are short, a worker that claims only what
//! it can start now spends most of its time waiting on claims: at a limit of 10 every round is
//! one claim of 10 jobs. Claiming ahead keeps the next jobs at hand: the worker claims its free
//! permits' worth plus *ahead*, the jobs it expects to start while the next claim is in flight,
//! capped by `WorkerBuilder::claim_ahead` (default: the claim batch). *Ahead* is twice the
//! claim round trip times the rate at which the worker starts jobs, taken as the smaller of
//! two figures: the start rate observed, and the rate its permits can free, `limit / duration`
//! with `duration` the longer of the recent handlers' average and the average time its
//! running handlers have run so far. A queue of no-op jobs is soon claimed in full batches; a
//! queue of one-second jobs at a limit of 10 is not claimed ahead at all (10 starts a second
//! times a millisecond's round trip rounds down to nothing), and when slow jobs follow quick
//! ones, the running slow jobs bring *ahead* down within one of their runs.
//!
//! The rules that keep it honest:
//!
//! * **Held, not started.** Jobs claimed ahead are claimed with `Claim::hold`: leased, but not
//!   started in the store. Readers (the API, the dashboard, `queue_stats`) report them
//!   `pending`, and a cancel ends one at once. A job leaves the buffer through
//!   `Store::start_held`, one statement for the jobs the free permits can take, which records
//!   the start only while the job is still held: one cancelled meanwhile never starts.
//! * **Bounded in time.** A claim tops the buffer up to *ahead* (a permit taken while the
//!   claim is in flight can leave a few more); when *ahead* falls and the oldest held job has
//!   waited longer than a few claim round trips, the jobs beyond *ahead* (the worst first) go
//!   back to `pending` in their place, their attempt not spent (`Store::release_held`), for
//!   any worker to take. Only kinds without a per-kind or cluster-wide limit are claimed
//!   ahead, and none while a kind's breaker is half-open.
//! * **Priority order.** Held jobs start best first (priority, then due time, then id), merged
//!   with each new claim, the moment a permit frees (the finishing job's task starts the next
//!   batch itself). A wake-up for newly enqueued jobs claims at least one job even with no
//!   permit free, so a job better than every held one is among them before the next permit
//!   frees.
//! * **Leased like running jobs.** Held jobs hold a lease, which the heartbeat extends. After
//!   a crash they are rescued when their leases run out, back to `pending` with their attempt
//!   unspent (they never ran).
//! * **Given back at shutdown.** When the worker stops claiming, the buffer is given back at
//!   once, in place and without spending an attempt.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::job::{Job, Lease};

use super::lock;

/// A buffered job, ordered best first, and when it was claimed.
#[derive(Debug)]
struct Ahead(Job, Instant);

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
        let now = Instant::now();
        lock(&self.jobs).extend(jobs.into_iter().map(|j| Ahead(j, now)));
    }

    /// The best buffered job.
    #[cfg(test)]
    pub(super) fn pop(&self) -> Option<Job> {
        lock(&self.jobs).pop().map(|a| a.0)
    }

    /// Up to `n` of the best buffered jobs, best first.
    pub(super) fn take_best(&self, n: usize) -> Vec<Job> {
        let mut jobs = lock(&self.jobs);
        std::iter::from_fn(|| jobs.pop().map(|a| a.0))
            .take(n)
            .collect()
    }

    /// The `n` worst buffered jobs, if the oldest buffered job was claimed more than `older`
    /// ago: what to give back when the buffer holds more than will start soon.
    pub(super) fn take_worst_if_older(&self, n: usize, older: Duration) -> Vec<Job> {
        let mut jobs = lock(&self.jobs);
        if n == 0 || !jobs.iter().any(|a| a.1.elapsed() > older) {
            return Vec::new();
        }
        let mut sorted = std::mem::take(&mut *jobs).into_sorted_vec(); // worst first
        let rest = sorted.split_off(n.min(sorted.len()));
        *jobs = BinaryHeap::from(rest);
        sorted.into_iter().map(|a| a.0).collect()
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
}

/// The recent handlers' average run time, fed by every finishing job (an exponential moving
/// average of one eighth per run, as `f64` seconds in an atomic).
#[derive(Debug, Default)]
pub(super) struct Durations(AtomicU64);

impl Durations {
    pub(super) fn record(&self, took: Duration) {
        let took = took.as_secs_f64();
        // (Racing updates may drop one sample: an average needs no more.)
        let old = f64::from_bits(self.0.load(Ordering::Relaxed));
        let new = if old == 0.0 {
            took
        } else {
            old + (took - old) / 8.0
        };
        self.0.store(new.to_bits(), Ordering::Relaxed);
    }

    /// The average, in seconds (0 before any run).
    pub(super) fn average(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
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

    /// How many jobs to hold beyond the free permits now, for `limit` permits whose jobs run
    /// `duration` seconds each (0: not known yet).
    pub(super) fn ahead(&self, limit: usize, duration: f64) -> usize {
        self.ahead_within(self.round_trip, limit, duration)
    }

    /// How many jobs the worker expects to start within two `round_trip`s (seconds), capped:
    /// at the rate its permits free, `limit / duration`, once a duration is known (the start
    /// rate observed until then).
    pub(super) fn ahead_within(&self, round_trip: f64, limit: usize, duration: f64) -> usize {
        let rate = if duration > 0.0 {
            limit as f64 / duration
        } else {
            self.rate
        };
        let expected = (rate * round_trip * 2.0).floor();
        (expected as usize).min(self.cap)
    }

    /// How long a job may be held before the buffer's excess goes back: a few claim round
    /// trips (at least a millisecond).
    pub(super) fn hold_limit(&self) -> Duration {
        Duration::from_secs_f64(self.round_trip * 4.0).max(Duration::from_millis(1))
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
            e.ahead(10, 0.0),
            0,
            "nothing is claimed ahead before a rate is known"
        );
        e.rate = 10_000.0;
        e.round_trip = 0.001;
        assert_eq!(e.ahead(10, 0.0), 20, "no duration known: the start rate");
        assert_eq!(e.ahead(10, 0.001), 20, "10 permits of 1 ms jobs");
        e.rate = 10.0; // one-second jobs at a limit of 10
        assert_eq!(e.ahead(10, 0.0), 0);
        e.rate = 1_000_000.0;
        assert_eq!(e.ahead(10, 0.0), 100, "capped");
        assert_eq!(Estimate::new(0).ahead(10, 0.0), 0);
    }

    #[test]
    fn slow_running_jobs_bring_the_estimate_down_whatever_the_past_start_rate() {
        let mut e = Estimate::new(500);
        e.rate = 100_000.0; // no-op jobs a moment ago
        e.round_trip = 0.002;
        assert_eq!(
            e.ahead(4, 0.000_032),
            500,
            "32 µs jobs at a limit of 4: capped"
        );
        assert_eq!(
            e.ahead(4, 0.025),
            0,
            "25 ms jobs at a limit of 4: none ahead"
        );
        assert_eq!(e.ahead(100, 0.025), 16);
    }

    #[test]
    fn the_excess_goes_back_worst_first_once_held_too_long() {
        let buffer = Buffer::default();
        buffer.push([job(1, 5, 10), job(2, 9, 10), job(3, 1, 10), job(4, 5, 20)]);
        assert!(
            buffer
                .take_worst_if_older(2, Duration::from_secs(60))
                .is_empty(),
            "held briefly: kept"
        );
        std::thread::sleep(Duration::from_millis(2));
        let back: Vec<i64> = buffer
            .take_worst_if_older(2, Duration::from_millis(1))
            .iter()
            .map(|j| j.id.0)
            .collect();
        assert_eq!(back, [3, 4]);
        let left: Vec<i64> = std::iter::from_fn(|| buffer.pop())
            .map(|j| j.id.0)
            .collect();
        assert_eq!(left, [2, 1]);
    }

    #[test]
    fn take_best_takes_the_best() {
        let buffer = Buffer::default();
        buffer.push([job(1, 5, 10), job(2, 9, 10), job(3, 1, 10)]);
        let taken: Vec<i64> = buffer.take_best(2).into_iter().map(|j| j.id.0).collect();
        assert_eq!(taken, [2, 1]);
        assert_eq!(buffer.len(), 1);
    }

    #[test]
    fn durations_average_recent_runs() {
        let d = Durations::default();
        assert_eq!(d.average(), 0.0);
        d.record(Duration::from_millis(8));
        assert!((d.average() - 0.008).abs() < 1e-9);
        d.record(Duration::from_millis(16));
        assert!((d.average() - 0.009).abs() < 1e-9);
    }
}
