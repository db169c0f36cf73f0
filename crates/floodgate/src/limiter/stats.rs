//! Counters, the wait-time histogram, the `metrics` handles and the [`LimiterStats`] snapshot.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::error::Rejected;
use crate::histogram::LogHistogram;

/// Lock-free counters behind [`LimiterStats`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) acquired: AtomicU64,
    pub(crate) peak: AtomicUsize,
    pub(crate) queue_full: AtomicU64,
    pub(crate) timeout: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) would_block: AtomicU64,
    pub(crate) expired: AtomicU64,
    /// Waits of acquires that queued. Acquires that never queued waited zero: they are
    /// `acquired - waits.count()`, so the fast path records nothing here.
    waits: LogHistogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            acquired: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
            queue_full: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            would_block: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            waits: LogHistogram::default(),
        }
    }
}

impl Counters {
    pub(crate) fn record_wait(&self, waited: Duration) {
        self.waits.record(waited);
    }

    pub(crate) fn count_rejection(&self, rejected: &Rejected) {
        let counter = match rejected {
            Rejected::QueueFull { .. } => &self.queue_full,
            Rejected::Timeout { .. } => &self.timeout,
            Rejected::Closed => &self.closed,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The `q` quantile (0..=1) of waits, as the upper bound of its bucket.
    fn wait_quantile(&self, acquired: u64, q: f64) -> Duration {
        let queued = self.waits.count();
        self.waits
            .quantile(q, acquired.saturating_sub(queued))
            .unwrap_or(Duration::ZERO)
    }
}

/// `metrics` handles, registered once per limiter so the hot path only touches atomics.
///
/// Handles are bound to the recorder installed when the limiter is built: install your
/// recorder (e.g. the Prometheus exporter) before building limiters.
#[derive(Debug)]
pub(crate) struct LimiterMetrics {
    pub(crate) active: Gauge,
    pub(crate) queued: Gauge,
    pub(crate) limit: Gauge,
    pub(crate) acquired: Counter,
    pub(crate) expired: Counter,
    pub(crate) wait: Histogram,
    queue_full: Counter,
    timeout: Counter,
    closed: Counter,
    would_block: Counter,
}

impl LimiterMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let label = name.to_owned();
        let rejected = |reason: &'static str| metrics::counter!("floodgate_limiter_rejected_total", "limiter" => label.clone(), "reason" => reason);
        LimiterMetrics {
            active: metrics::gauge!("floodgate_limiter_active", "limiter" => label.clone()),
            queued: metrics::gauge!("floodgate_limiter_queued", "limiter" => label.clone()),
            limit: metrics::gauge!("floodgate_limiter_limit", "limiter" => label.clone()),
            acquired: metrics::counter!("floodgate_limiter_acquired_total", "limiter" => label.clone()),
            expired: metrics::counter!("floodgate_limiter_expired_total", "limiter" => label.clone()),
            wait: metrics::histogram!("floodgate_limiter_wait_seconds", "limiter" => label.clone()),
            queue_full: rejected("queue_full"),
            timeout: rejected("timeout"),
            closed: rejected("closed"),
            would_block: rejected("would_block"),
        }
    }

    pub(crate) fn count_rejection(&self, rejected: &Rejected) {
        match rejected {
            Rejected::QueueFull { .. } => self.queue_full.increment(1),
            Rejected::Timeout { .. } => self.timeout.increment(1),
            Rejected::Closed => self.closed.increment(1),
        }
    }

    pub(crate) fn count_would_block(&self) {
        self.would_block.increment(1);
    }
}

/// Rejections by reason, as counted since the limiter was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedCounts {
    /// Acquires refused because the wait queue held `max_queue` waiters.
    pub queue_full: u64,
    /// Acquires that waited `acquire_timeout` without getting a permit.
    pub timeout: u64,
    /// Acquires refused because the limiter was closed.
    pub closed: u64,
    /// `try_acquire` calls that found no free permit.
    pub would_block: u64,
}

impl RejectedCounts {
    /// All rejections together.
    pub fn total(&self) -> u64 {
        self.queue_full + self.timeout + self.closed + self.would_block
    }
}

/// A point-in-time snapshot of a [`Limiter`](super::Limiter).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimiterStats {
    /// The limiter's name (the `limiter` label of its metrics).
    pub name: String,
    /// The current limit.
    pub limit: usize,
    /// Permits held now.
    pub active: usize,
    /// Free permits now.
    pub available: usize,
    /// Acquires waiting in the queue now.
    pub queued: usize,
    /// The most permits ever held at once.
    pub peak_active: usize,
    /// Permits handed out since the limiter was built.
    pub acquired: u64,
    /// Rejected acquires by reason.
    pub rejected: RejectedCounts,
    /// Leased permits reclaimed because their holder kept them past the lease.
    pub expired: u64,
    /// Median wait for a permit (upper bound of its power-of-two microsecond bucket).
    pub wait_p50: Duration,
    /// 99th-percentile wait for a permit (upper bound of its bucket).
    pub wait_p99: Duration,
    /// Whether the limiter is closed.
    pub closed: bool,
}

impl LimiterStats {
    pub(crate) fn wait_quantiles(counters: &Counters, acquired: u64) -> (Duration, Duration) {
        (
            counters.wait_quantile(acquired, 0.5),
            counters.wait_quantile(acquired, 0.99),
        )
    }
}

#[cfg(all(test, not(floodgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_fast_acquires_as_zero_waits() {
        let c = Counters::default();
        for _ in 0..10 {
            c.record_wait(Duration::from_millis(3));
        }
        // 100 acquired, 10 of which queued ~3 ms: p50 is zero, p99 is in the 3 ms bucket.
        let (p50, p99) = LimiterStats::wait_quantiles(&c, 100);
        assert_eq!(p50, Duration::ZERO);
        assert_eq!(p99, Duration::from_micros(4096));
    }

    #[test]
    fn quantiles_of_nothing_are_zero() {
        let c = Counters::default();
        assert_eq!(
            LimiterStats::wait_quantiles(&c, 0),
            (Duration::ZERO, Duration::ZERO)
        );
    }
}
