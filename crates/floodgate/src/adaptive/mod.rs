//! Adaptive concurrency limits: a [`Limiter`] whose limit follows the dependency's latency.
//!
//! An [`AdaptiveLimiter`] is a [`Limiter`] (priorities, queue bound, timeouts, leases all still
//! work) whose limit a [`LimitAlgorithm`] moves with `set_limit` after every completed call.
//! Each [`AdaptivePermit`] records a [`Sample`] — latency, calls in flight when it started,
//! outcome — when it is completed explicitly or dropped.
//!
//! | algorithm | idea in two lines |
//! |---|---|
//! | [`Aimd`] | +1 per successful call while the limit is in use; ×0.9 on a drop or a timeout. Simple, reacts to errors only. |
//! | [`Vegas`] | estimates the queue at the dependency from latency over the fastest seen; keeps it small. Reacts to latency. |
//! | [`Gradient2`] | shrinks the limit by how far latency rises over a long-term baseline; grows by a small headroom otherwise. |
//!
//! Cancelled calls (a permit dropped by a cancelled future, or [`AdaptivePermit::ignore`]) are
//! not drops; drops and timeouts lower the limit.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::Limiter;
//! use floodgate::adaptive::{AdaptiveLimiter, Vegas};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let db = AdaptiveLimiter::new(Limiter::builder().name("db").max_queue(1_000), Vegas::default()).unwrap();
//! let permit = db.acquire().await.unwrap();
//! // ... query ...
//! permit.success(); // or permit.dropped() on a timeout or an overload error
//! assert!(db.limit() >= 1);
//! # }
//! ```

mod algorithm;

#[cfg(feature = "tower")]
pub mod layer;

use std::sync::Arc;

use metrics::Gauge;
use tokio::time::Instant;

pub use algorithm::{Aimd, Gradient2, LimitAlgorithm, Sample, SampleOutcome, Vegas};

use crate::limiter::{
    Limiter, LimiterBuilder, LimiterError, OwnedPermit, Priority, Rejected, TryAcquireError,
};
use crate::sync::{Mutex, lock};

struct Shared {
    algorithm: Mutex<Box<dyn LimitAlgorithm>>,
    gauge: Gauge,
}

/// A [`Limiter`] whose limit an algorithm adapts; see the [module docs](self). Clones share it.
#[derive(Clone)]
pub struct AdaptiveLimiter {
    limiter: Limiter,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("limiter", &self.limiter.name())
            .field("limit", &self.limiter.limit())
            .finish_non_exhaustive()
    }
}

impl AdaptiveLimiter {
    /// Builds the limiter from `builder` (its `max_concurrency` is replaced by the algorithm's
    /// initial limit) and lets `algorithm` move its limit.
    pub fn new(
        builder: LimiterBuilder,
        algorithm: impl LimitAlgorithm,
    ) -> Result<Self, LimiterError> {
        let initial = algorithm.limit().max(1);
        let limiter = builder.max_concurrency(initial).build()?;
        let gauge =
            metrics::gauge!("floodgate_adaptive_limit", "limiter" => limiter.name().to_owned());
        gauge.set(initial as f64);
        Ok(AdaptiveLimiter {
            limiter,
            shared: Arc::new(Shared {
                algorithm: Mutex::new(Box::new(algorithm)),
                gauge,
            }),
        })
    }

    /// The underlying limiter (stats, close, drain, leases).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limiter.limit()
    }

    /// Waits for a permit at [`Priority::DEFAULT`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Limiter::acquire`].
    pub async fn acquire(&self) -> Result<AdaptivePermit, Rejected> {
        self.acquire_with(Priority::DEFAULT).await
    }

    /// Waits for a permit at `priority`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Limiter::acquire`].
    pub async fn acquire_with(&self, priority: Priority) -> Result<AdaptivePermit, Rejected> {
        let permit = self.limiter.acquire_owned_with(priority).await?;
        Ok(AdaptivePermit {
            permit: Some(permit),
            start: Instant::now(),
            in_flight: self.limiter.active(),
            owner: self.clone(),
        })
    }

    /// A permit now, if one is free: never waits and never queues.
    pub fn try_acquire(&self) -> Result<AdaptivePermit, TryAcquireError> {
        let permit = self.limiter.try_acquire_owned()?;
        Ok(AdaptivePermit {
            permit: Some(permit),
            start: Instant::now(),
            in_flight: self.limiter.active(),
            owner: self.clone(),
        })
    }

    /// Feeds one sample to the algorithm and applies the new limit.
    pub fn record(&self, sample: Sample) {
        let new = lock(&self.shared.algorithm).update(sample).max(1);
        if new != self.limiter.limit() {
            // `new` is at least 1 and no larger than the algorithm's max.
            let _ = self.limiter.set_limit(new);
            self.shared.gauge.set(new as f64);
        }
    }
}

/// A permit of an [`AdaptiveLimiter`]. Report how the call went with [`success`](Self::success),
/// [`dropped`](Self::dropped) or [`ignore`](Self::ignore); dropping it unreported records a
/// success with the latency so far.
#[must_use = "the permit is released (and a success recorded) as soon as it is dropped"]
pub struct AdaptivePermit {
    permit: Option<OwnedPermit>,
    start: Instant,
    in_flight: usize,
    owner: AdaptiveLimiter,
}

impl std::fmt::Debug for AdaptivePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl AdaptivePermit {
    /// The call succeeded.
    pub fn success(mut self) {
        self.finish(SampleOutcome::Success);
    }

    /// The call timed out or the dependency shed it.
    pub fn dropped(mut self) {
        self.finish(SampleOutcome::Dropped);
    }

    /// The call says nothing about the dependency (e.g. it was cancelled).
    pub fn ignore(mut self) {
        self.finish(SampleOutcome::Ignored);
    }

    /// Reports `outcome`.
    pub fn complete(mut self, outcome: SampleOutcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: SampleOutcome) {
        if let Some(permit) = self.permit.take() {
            let sample = Sample {
                started: self.start,
                latency: self.start.elapsed(),
                in_flight: self.in_flight,
                outcome,
            };
            drop(permit);
            self.owner.record(sample);
        }
    }
}

impl Drop for AdaptivePermit {
    fn drop(&mut self) {
        self.finish(SampleOutcome::Success);
    }
}
