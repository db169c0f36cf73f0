//! A lock-free histogram of durations in power-of-two microsecond buckets: cheap to record
//! (one `fetch_add`), good enough for p50/p99 estimates (within 2x), fixed size.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket `i > 0` holds durations in `[2^(i-1), 2^i)` µs; bucket 0 holds under 1 µs.
const BUCKETS: usize = 40;

#[derive(Debug)]
pub(crate) struct LogHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LogHistogram {
    pub(crate) fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// Samples recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The `q` quantile (0..=1) as the upper bound of its bucket, counting `zeros` extra
    /// samples of zero that were not recorded; `None` without samples.
    pub(crate) fn quantile(&self, q: f64, zeros: u64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total = counts.iter().sum::<u64>() + zeros;
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = zeros;
        if seen >= rank {
            return Some(Duration::ZERO);
        }
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << i));
            }
        }
        Some(Duration::from_micros(1u64 << (BUCKETS - 1)))
    }
}

#[cfg(all(test, not(floodgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_unrecorded_zeros() {
        let h = LogHistogram::default();
        for _ in 0..10 {
            h.record(Duration::from_millis(3));
        }
        assert_eq!(h.quantile(0.5, 90), Some(Duration::ZERO));
        assert_eq!(h.quantile(0.99, 90), Some(Duration::from_micros(4096)));
        assert_eq!(h.quantile(0.5, 0), Some(Duration::from_micros(4096)));
        assert_eq!(LogHistogram::default().quantile(0.5, 0), None);
        assert_eq!(h.count(), 10);
    }
}
