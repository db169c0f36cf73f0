//! Hedged requests: when an attempt is slow, start another and take whichever answers first.
//!
//! A [`Hedge`] starts the operation, and if it has not succeeded after a delay — fixed, or a
//! latency percentile the hedger observes — starts another attempt, up to `max_hedges`. The
//! first success wins and the others are cancelled (dropped). A failed attempt does not end
//! the call while others run; when none is left, the next hedge starts at once.
//!
//! Hedges are extra load, so they are paid for: each draws a token from a shared
//! [`RetryBudget`] and a permit from a [`Limiter`] when those are configured (the permit is
//! held while the hedge runs). A hedge that can't be paid for is not started.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::hedge::{Hedge, HedgeDelay};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let hedge = Hedge::new(HedgeDelay::Fixed(Duration::from_millis(50))).max_hedges(1);
//! let attempt = std::sync::atomic::AtomicU32::new(0);
//! let value = hedge
//!     .run(|| {
//!         let n = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!         async move {
//!             // The first attempt is stuck; the hedge answers in 10 ms.
//!             let ms = if n == 0 { 10_000 } else { 10 };
//!             tokio::time::sleep(Duration::from_millis(ms)).await;
//!             Ok::<_, ()>(n)
//!         }
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(value, 1);
//! # }
//! ```

#[cfg(feature = "tower")]
pub mod layer;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::histogram::LogHistogram;
use crate::limiter::{Limiter, OwnedPermit};
use crate::retry::RetryBudget;

/// When to start a hedge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After this long without a success.
    Fixed(Duration),
    /// After the `quantile` (e.g. 0.95) of observed successful latencies; `until_then` is used
    /// until `min_samples` latencies have been seen.
    Percentile {
        /// The latency quantile in `(0, 1)`.
        quantile: f64,
        /// Samples needed before the quantile is trusted.
        min_samples: u64,
        /// The delay before that.
        until_then: Duration,
    },
}

#[derive(Debug, Default)]
struct Shared {
    latencies: LogHistogram,
    calls: AtomicU64,
    hedges: AtomicU64,
    hedge_wins: AtomicU64,
    refused: AtomicU64,
}

/// Counters of a [`Hedge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeStats {
    /// Calls run.
    pub calls: u64,
    /// Hedges started.
    pub hedges: u64,
    /// Calls won by a hedge rather than the first attempt.
    pub hedge_wins: u64,
    /// Hedges not started because the budget or limiter refused.
    pub refused: u64,
    /// The delay a hedge would start after now.
    pub delay: Duration,
}

/// Runs operations with hedged attempts; clones share the latency statistics and counters.
#[derive(Debug, Clone)]
pub struct Hedge {
    delay: HedgeDelay,
    max_hedges: u32,
    budget: Option<RetryBudget>,
    limiter: Option<Limiter>,
    shared: Arc<Shared>,
}

impl Hedge {
    /// Hedges after `delay`, at most once (see [`max_hedges`](Self::max_hedges)).
    pub fn new(delay: HedgeDelay) -> Self {
        Hedge {
            delay,
            max_hedges: 1,
            budget: None,
            limiter: None,
            shared: Arc::default(),
        }
    }

    /// At most this many extra attempts per call.
    pub fn max_hedges(mut self, n: u32) -> Self {
        self.max_hedges = n;
        self
    }

    /// Pay for each hedge with a token from `budget`.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Hold a permit of `limiter` while a hedge runs; no free permit, no hedge.
    pub fn limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The current hedge delay.
    pub fn delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                quantile,
                min_samples,
                until_then,
            } => {
                if self.shared.latencies.count() < min_samples {
                    until_then
                } else {
                    self.shared
                        .latencies
                        .quantile(quantile, 0)
                        .unwrap_or(until_then)
                }
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> HedgeStats {
        let i = &self.shared;
        HedgeStats {
            calls: i.calls.load(Relaxed),
            hedges: i.hedges.load(Relaxed),
            hedge_wins: i.hedge_wins.load(Relaxed),
            refused: i.refused.load(Relaxed),
            delay: self.delay(),
        }
    }

    /// Takes what a hedge needs, or `None` if the budget or limiter refuses.
    fn pay(&self) -> Option<Option<OwnedPermit>> {
        let permit = match &self.limiter {
            Some(l) => match l.try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return None,
            },
            None => None,
        };
        if let Some(b) = &self.budget
            && !b.withdraw()
        {
            return None;
        }
        Some(permit)
    }

    /// Runs `op`, hedging per the settings; returns the first success, or the last error
    /// when every attempt failed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels every attempt in flight.
    pub async fn run<F, Fut, T, E>(&self, mut op: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let i = &self.shared;
        i.calls.fetch_add(1, Relaxed);
        if let Some(b) = &self.budget {
            b.deposit();
        }
        let start = Instant::now();
        let delay = self.delay();
        let mut running = FuturesUnordered::new();
        running.push(attempt(0, op(), None));
        let mut launched = 0u32;
        let mut next = start + delay;
        loop {
            let can_hedge = launched < self.max_hedges;
            tokio::select! {
                biased;
                Some((index, result)) = running.next() => match result {
                    Ok(v) => {
                        i.latencies.record(start.elapsed());
                        if index > 0 {
                            i.hedge_wins.fetch_add(1, Relaxed);
                        }
                        return Ok(v);
                    }
                    Err(e) => {
                        if !running.is_empty() {
                            continue;
                        }
                        if !can_hedge {
                            return Err(e);
                        }
                        match self.pay() {
                            Some(permit) => {
                                launched += 1;
                                i.hedges.fetch_add(1, Relaxed);
                                running.push(attempt(launched, op(), permit));
                                next = Instant::now() + delay;
                            }
                            None => {
                                i.refused.fetch_add(1, Relaxed);
                                return Err(e);
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(next), if can_hedge => {
                    match self.pay() {
                        Some(permit) => {
                            launched += 1;
                            i.hedges.fetch_add(1, Relaxed);
                            tracing::trace!(hedge = launched, "starting a hedged attempt");
                            running.push(attempt(launched, op(), permit));
                        }
                        None => {
                            i.refused.fetch_add(1, Relaxed);
                            launched = self.max_hedges; // no more hedges for this call
                        }
                    }
                    next += delay;
                }
            }
        }
    }
}

async fn attempt<Fut: Future>(
    index: u32,
    fut: Fut,
    permit: Option<OwnedPermit>,
) -> (u32, Fut::Output) {
    let out = fut.await;
    drop(permit);
    (index, out)
}
