//! Sliding windows of call outcomes.
//!
//! **Count-based** (the default) keeps the last `size` calls in a ring of atomic slots, one per
//! call sequence number modulo `size`. A success writes nothing: every slot carries the
//! sequence number of the call that wrote it, so a slot written more than `size` calls ago is
//! simply outside the window. A closed-state success therefore costs one `fetch_add`; a failure
//! or slow call stores its slot and scans the ring to evaluate the rates. No lock, no
//! allocation.
//!
//! **Time-based** keeps `buckets` buckets of `window / buckets` each behind a short lock
//! (a time window needs a clock read per call anyway).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::{AtomicU64, Mutex, lock};

const FAILED: u64 = 0b01;
const SLOW: u64 = 0b10;

/// Counts over the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Rates {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Rates {
    pub(crate) fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    pub(crate) fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Records one outcome; returns the window's counts when they may have crossed a
    /// threshold: after a failure or a slow call, or when a success brings the window to
    /// `min_calls` calls. `None` for any other fast success.
    pub(crate) fn record(&self, failed: bool, slow: bool, min_calls: u64) -> Option<Rates> {
        match self {
            Window::Count(w) => w.record(failed, slow, min_calls),
            Window::Time(w) => w.record(Instant::now(), failed, slow),
        }
    }

    /// The most calls the window can hold (`u64::MAX` for time windows).
    pub(crate) fn capacity(&self) -> u64 {
        match self {
            Window::Count(w) => w.size(),
            Window::Time(_) => u64::MAX,
        }
    }

    pub(crate) fn rates(&self) -> Rates {
        match self {
            Window::Count(w) => w.rates(),
            Window::Time(w) => w.rates(Instant::now()),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    /// `seq << 2 | SLOW? | FAILED?` of the last failed or slow call that used the slot.
    slots: Box<[AtomicU64]>,
    /// Calls recorded ever; call `n` (1-based) owns slot `n % size`.
    seq: AtomicU64,
    /// `seq` at the last reset: calls up to it are outside the window.
    start: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(size: usize) -> Self {
        CountWindow {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            seq: AtomicU64::new(0),
            start: AtomicU64::new(0),
        }
    }

    fn size(&self) -> u64 {
        self.slots.len() as u64
    }

    pub(crate) fn record(&self, failed: bool, slow: bool, min_calls: u64) -> Option<Rates> {
        let n = self.seq.fetch_add(1, AcqRel) + 1;
        if !failed && !slow {
            return (n - self.start.load(Relaxed).min(n) == min_calls).then(|| self.rates());
        }
        let flags = if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        self.slots[(n % self.size()) as usize].store(n << 2 | flags, Release);
        Some(self.rates())
    }

    pub(crate) fn rates(&self) -> Rates {
        let hi = self.seq.load(Acquire);
        // A reset racing this read can move `start` past the `hi` read here: clamp, so the
        // window reads empty instead of underflowing.
        let lo = hi
            .saturating_sub(self.size())
            .max(self.start.load(Acquire))
            .min(hi);
        let mut rates = Rates {
            calls: hi - lo,
            ..Rates::default()
        };
        for slot in self.slots.iter() {
            let v = slot.load(Acquire);
            let n = v >> 2;
            if n > lo && n <= hi {
                rates.failures += v & FAILED;
                rates.slow += (v & SLOW) >> 1;
            }
        }
        rates
    }

    pub(crate) fn reset(&self) {
        self.start.store(self.seq.load(Acquire), Release);
    }

    /// Calls recorded since the breaker was built.
    pub(crate) fn total(&self) -> u64 {
        self.seq.load(Relaxed)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    tick: u64,
    rates: Rates,
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    base: Instant,
    bucket: Duration,
    buckets: Mutex<Vec<Bucket>>,
}

impl TimeWindow {
    pub(crate) fn new(window: Duration, buckets: usize) -> Self {
        let bucket = (window / buckets as u32).max(Duration::from_millis(1));
        TimeWindow {
            base: Instant::now(),
            bucket,
            // Tick 0 is "never used": real ticks start at 1.
            buckets: Mutex::new(vec![Bucket::default(); buckets]),
        }
    }

    fn tick(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.base).as_nanos() / self.bucket.as_nanos()) as u64 + 1
    }

    pub(crate) fn record(&self, now: Instant, failed: bool, slow: bool) -> Option<Rates> {
        let tick = self.tick(now);
        let mut buckets = lock(&self.buckets);
        let len = buckets.len() as u64;
        let b = &mut buckets[(tick % len) as usize];
        if b.tick != tick {
            *b = Bucket {
                tick,
                rates: Rates::default(),
            };
        }
        b.rates.calls += 1;
        b.rates.failures += u64::from(failed);
        b.rates.slow += u64::from(slow);
        drop(buckets);
        (failed || slow).then(|| self.rates(now))
    }

    pub(crate) fn rates(&self, now: Instant) -> Rates {
        let tick = self.tick(now);
        let buckets = lock(&self.buckets);
        let len = buckets.len() as u64;
        let mut r = Rates::default();
        for b in buckets
            .iter()
            .filter(|b| b.tick != 0 && b.tick + len > tick && b.tick <= tick)
        {
            r.calls += b.rates.calls;
            r.failures += b.rates.failures;
            r.slow += b.rates.slow;
        }
        r
    }

    pub(crate) fn reset(&self) {
        lock(&self.buckets).fill(Bucket::default());
    }
}

#[cfg(all(test, not(floodgate_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The count window always equals the model: the last `size` calls since the last
        /// reset, with their failed / slow flags.
        #[test]
        fn count_window_matches_the_model(
            size in 1usize..20,
            ops in prop::collection::vec((any::<bool>(), any::<bool>(), prop::bool::weighted(0.05)), 0..200),
        ) {
            let w = CountWindow::new(size);
            let mut model: Vec<(bool, bool)> = Vec::new();
            for (failed, slow, reset) in ops {
                if reset {
                    w.reset();
                    model.clear();
                    continue;
                }
                w.record(failed, slow, u64::MAX);
                model.push((failed, slow));
                let tail = &model[model.len().saturating_sub(size)..];
                let expect = Rates {
                    calls: tail.len() as u64,
                    failures: tail.iter().filter(|c| c.0).count() as u64,
                    slow: tail.iter().filter(|c| c.1).count() as u64,
                };
                prop_assert_eq!(w.rates(), expect);
            }
        }

        /// The time window counts exactly the calls of the buckets still inside the window.
        #[test]
        fn time_window_forgets_old_buckets(
            gaps_ms in prop::collection::vec((0u64..400, any::<bool>()), 1..100),
        ) {
            let w = TimeWindow::new(Duration::from_secs(1), 10);
            let mut t = w.base;
            let mut calls: Vec<(u64, bool)> = Vec::new();
            for (gap, failed) in gaps_ms {
                t += Duration::from_millis(gap);
                w.record(t, failed, false);
                let tick = w.tick(t);
                calls.push((tick, failed));
                let live: Vec<_> = calls.iter().filter(|(k, _)| k + 10 > tick).collect();
                let r = w.rates(t);
                prop_assert_eq!(r.calls, live.len() as u64);
                prop_assert_eq!(r.failures, live.iter().filter(|c| c.1).count() as u64);
            }
        }
    }
}
