//! [`RetryBudget`]: retries may add at most a fraction of the traffic, plus a small floor.
//!
//! Per-call retry limits do not stop a storm: when a dependency is down, every call retries
//! its maximum and the load multiplies. A budget shared by all callers caps the extra load:
//! each first attempt deposits `ratio` of a token, each retry (or hedge) withdraws a whole
//! one, and a reserve refilled at `min_per_second` lets a trickle of retries through when
//! traffic is low. Tokens saved are capped, so a quiet hour does not fund a storm.
//!
//! ```
//! use floodgate::retry::RetryBudget;
//! let budget = RetryBudget::new(0.2, 0);
//! for _ in 0..10 {
//!     budget.deposit();
//! }
//! assert!(budget.withdraw()); // 10 calls x 20% = 2 retries
//! assert!(budget.withdraw());
//! assert!(!budget.withdraw());
//! ```

use std::sync::Arc;
use std::sync::atomic::{
    AtomicI64, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed},
};

use tokio::time::Instant;

const MILLI: i64 = 1_000;

#[derive(Debug)]
struct Inner {
    deposit: i64,
    cap: i64,
    balance: AtomicI64,
    per_second: i64,
    reserve: AtomicI64,
    base: Instant,
    refilled_at: AtomicU64,
    rejected: AtomicU64,
}

/// A retry budget shared by every caller that clones it.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

impl RetryBudget {
    /// Retries may add `ratio` (e.g. `0.2` for 20%) to the traffic, plus `min_per_second`
    /// retries per second whatever the traffic. At most 100 retries' worth is saved up.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self::with_cap(ratio, min_per_second, 100)
    }

    /// As [`new`](Self::new), saving up at most `max_saved` retries.
    pub fn with_cap(ratio: f64, min_per_second: u32, max_saved: u32) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1_000.0)
        } else {
            0.0
        };
        RetryBudget {
            inner: Arc::new(Inner {
                deposit: (ratio * MILLI as f64).round() as i64,
                cap: i64::from(max_saved) * MILLI,
                balance: AtomicI64::new(0),
                per_second: i64::from(min_per_second),
                reserve: AtomicI64::new(i64::from(min_per_second) * MILLI),
                base: Instant::now(),
                refilled_at: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// Records a first attempt (earns `ratio` of a retry).
    pub fn deposit(&self) {
        let i = &self.inner;
        if i.deposit == 0 {
            return;
        }
        let _ = i.balance.fetch_update(AcqRel, Acquire, |b| {
            (b < i.cap).then(|| (b + i.deposit).min(i.cap))
        });
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        let i = &self.inner;
        if take(&i.balance) {
            return true;
        }
        self.refill_reserve();
        if take(&i.reserve) {
            return true;
        }
        i.rejected.fetch_add(1, Relaxed);
        false
    }

    /// Retries refused so far.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Relaxed)
    }

    fn refill_reserve(&self) {
        let i = &self.inner;
        if i.per_second == 0 {
            return;
        }
        let now = i.base.elapsed().as_millis() as u64;
        let last = i.refilled_at.load(Acquire);
        let earned = (now.saturating_sub(last) as i64) * i.per_second; // milli-tokens
        if earned > 0
            && i.refilled_at
                .compare_exchange(last, now, AcqRel, Acquire)
                .is_ok()
        {
            let cap = i.per_second * MILLI;
            let _ = i
                .reserve
                .fetch_update(AcqRel, Acquire, |r| Some((r + earned).min(cap)));
        }
    }
}

fn take(tokens: &AtomicI64) -> bool {
    tokens
        .fetch_update(AcqRel, Acquire, |t| (t >= MILLI).then_some(t - MILLI))
        .is_ok()
}
