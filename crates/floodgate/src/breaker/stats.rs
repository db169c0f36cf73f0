//! Lifetime counters, the `metrics` handles and the [`BreakerStats`] snapshot.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use metrics::{Counter, Gauge};

use super::events::State;

/// A snapshot of one breaker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The breaker's name.
    pub name: String,
    /// Its state now.
    pub state: State,
    /// How long it has been in that state.
    pub in_state_for: Duration,
    /// For an open breaker: how long until it lets probes through.
    pub retry_after: Option<Duration>,
    /// Calls in the current window.
    pub window_calls: u64,
    /// Failure rate over the current window (0..=1).
    pub failure_rate: f64,
    /// Slow-call rate over the current window (0..=1).
    pub slow_rate: f64,
    /// Calls counted since the breaker was built (not ignored, not rejected).
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow calls.
    pub slow: u64,
    /// Calls whose outcome was `Ignored` (including cancelled calls).
    pub ignored: u64,
    /// Calls rejected while open.
    pub rejected: u64,
    /// Consecutive re-opens (the open wait grows with it).
    pub reopens: u32,
    /// The error of the call that last opened the breaker.
    pub last_failure: Option<String>,
}

/// Lock-free counters behind [`BreakerStats`] (calls live in the window), with the
/// `floodgate_breaker_*{breaker="name"}` handles they feed.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) failures: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) slow: AtomicU64,
    metrics: Metrics,
}

#[derive(Debug)]
struct Metrics {
    state: Gauge,
    success: Counter,
    failure: Counter,
    ignored: Counter,
    rejected: Counter,
    transitions: Counter,
}

impl Counters {
    /// Zeroed counters; the state gauge starts at closed.
    pub(crate) fn new(name: &str) -> Self {
        let calls = |outcome: &'static str| metrics::counter!("floodgate_breaker_calls_total", "breaker" => name.to_owned(), "outcome" => outcome);
        let metrics = Metrics {
            state: metrics::gauge!("floodgate_breaker_state", "breaker" => name.to_owned()),
            success: calls("success"),
            failure: calls("failure"),
            ignored: calls("ignored"),
            rejected: calls("rejected"),
            transitions: metrics::counter!("floodgate_breaker_transitions_total", "breaker" => name.to_owned()),
        };
        metrics.state.set(0.0);
        Counters {
            failures: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            metrics,
        }
    }

    /// A call whose outcome does not count.
    pub(crate) fn count_ignored(&self) {
        self.ignored.fetch_add(1, Relaxed);
        self.metrics.ignored.increment(1);
    }

    /// A call refused while open.
    pub(crate) fn count_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
        self.metrics.rejected.increment(1);
    }

    /// A counted call: a success or a failure, and maybe slow.
    pub(crate) fn count_outcome(&self, failed: bool, slow: bool) {
        if failed {
            self.failures.fetch_add(1, Relaxed);
            self.metrics.failure.increment(1);
        } else {
            self.metrics.success.increment(1);
        }
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
    }

    /// A state change to `to`.
    pub(crate) fn count_transition(&self, to: State) {
        self.metrics.state.set(to.code() as f64);
        self.metrics.transitions.increment(1);
    }
}
