//! A bounded-concurrency gate for async work: [`Limiter`].
//!
//! A limiter hands out at most `max_concurrency` [permits](Permit) at once. Callers that find
//! no free permit wait in a queue ordered by [`Priority`] (highest first, first-come
//! first-served within a level), optionally with *aging* so that low priorities are never
//! starved. The queue can be bounded (`max_queue`, failing fast with
//! [`Rejected::QueueFull`]) and waits can time out ([`Rejected::Timeout`]). Permits are RAII
//! guards: dropping one, by returning, panicking or being cancelled, gives the slot back.
//!
//! The limit can change at run time ([`Limiter::set_limit`]), permits can carry a lease that
//! the limiter reclaims when it runs out ([`Limiter::acquire_leased`]), and a limiter can be
//! closed and drained for shutdown ([`Limiter::drain`]). [`Limiter::stats`] gives a snapshot,
//! and the same numbers go to the `metrics` facade as `floodgate_limiter_*{limiter="name"}`.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::{Limiter, Priority};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let llm = Limiter::builder()
//!     .name("llm")
//!     .max_concurrency(4)
//!     .max_queue(100)
//!     .acquire_timeout(Duration::from_secs(5))
//!     .aging(Duration::from_millis(500))
//!     .build()?;
//!
//! let permit = llm.acquire_with(Priority::HIGHEST).await?;
//! // ... call the model while holding the permit ...
//! drop(permit);
//!
//! assert_eq!(llm.stats().acquired, 1);
//! # Ok(())
//! # }
//! ```
//!
//! The engine and its invariants are described in `engine.rs`.

mod builder;
mod engine;
mod error;
mod permit;
mod priority;
mod stats;
mod waiters;

#[cfg(feature = "tower")]
pub mod layer;

#[cfg(all(test, floodgate_loom))]
mod loom_tests;

use std::time::Duration;

use tokio::time::Instant;

pub use builder::{LimiterBuilder, MAX_QUEUE};
pub use error::{DrainTimeout, InvalidPriority, LimiterError, Rejected, TryAcquireError};
pub use permit::{OwnedPermit, Permit};
pub use priority::Priority;
pub use stats::{LimiterStats, RejectedCounts};

use crate::sync::Arc;
use engine::{AcquireFuture, Engine, Fast};

/// A bounded-concurrency gate with priorities, a bounded wait queue, timeouts, leases,
/// run-time resizing and draining. Cloning gives another handle to the same limiter.
///
/// See the [module documentation](self) for an overview.
#[derive(Debug, Clone)]
pub struct Limiter {
    engine: Arc<Engine>,
}

impl Limiter {
    /// A limiter of `limit` permits with an unbounded queue and no timeout.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 or above the supported maximum; use [`Limiter::builder`] to get an
    /// error instead (for limits that come from configuration).
    pub fn new(limit: usize) -> Limiter {
        match Limiter::builder().max_concurrency(limit).build() {
            Ok(limiter) => limiter,
            Err(e) => panic!("Limiter::new({limit}): {e}"),
        }
    }

    /// Starts building a limiter with every setting.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder::default()
    }

    /// Waits for a permit at [`Priority::DEFAULT`].
    ///
    /// Fails with [`Rejected::QueueFull`] at once when `max_queue` waiters are queued, with
    /// [`Rejected::Timeout`] after `acquire_timeout`, and with [`Rejected::Closed`] when the
    /// limiter is (or gets) closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Dropping the future while it waits removes the waiter from the queue; if a
    /// permit was handed to it in the meantime, the permit passes to the next waiter. No permit
    /// is leaked and no wake-up is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limiter = floodgate::Limiter::new(2);
    /// let a = limiter.acquire().await.unwrap();
    /// let b = limiter.acquire().await.unwrap();
    /// assert_eq!(limiter.available(), 0);
    /// drop((a, b));
    /// assert_eq!(limiter.available(), 2);
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.acquire_with(Priority::DEFAULT).await
    }

    /// Waits for a permit at `priority`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use floodgate::{Limiter, Priority};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = Limiter::new(1);
    /// let _permit = limiter.acquire_with(Priority::new(8)?).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_with(&self, priority: Priority) -> Result<Permit<'_>, Rejected> {
        self.wait(priority).await?;
        Ok(Permit::new(self))
    }

    /// Waits for a permit that owns a handle to the limiter (for spawned tasks).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        self.acquire_owned_with(Priority::DEFAULT).await
    }

    /// Waits for an owned permit at `priority`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_owned_with(&self, priority: Priority) -> Result<OwnedPermit, Rejected> {
        self.wait(priority).await?;
        Ok(OwnedPermit::new(self.clone()))
    }

    /// Waits for a permit with a lease of `ttl`: if the permit is still held after `ttl`, the
    /// limiter takes the slot back (counted in [`LimiterStats::expired`]) and
    /// [`OwnedPermit::is_expired`] turns true. This bounds the damage of a holder that hangs
    /// or forgets its permit.
    ///
    /// Fails as [`acquire`](Self::acquire) does. A zero `ttl` expires as soon as the runtime
    /// runs the lease timer.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the lease timer is a Tokio task).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = floodgate::Limiter::new(1);
    /// let permit = limiter.acquire_leased(Duration::from_secs(30)).await.unwrap();
    /// tokio::time::sleep(Duration::from_secs(31)).await;
    /// assert!(permit.is_expired());
    /// assert_eq!(limiter.available(), 1); // the slot came back
    /// # }
    /// ```
    pub async fn acquire_leased(&self, ttl: Duration) -> Result<OwnedPermit, Rejected> {
        self.acquire_leased_with(Priority::DEFAULT, ttl).await
    }

    /// Waits for a leased permit at `priority`; see [`acquire_leased`](Self::acquire_leased).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire).
    pub async fn acquire_leased_with(
        &self,
        priority: Priority,
        ttl: Duration,
    ) -> Result<OwnedPermit, Rejected> {
        self.wait(priority).await?;
        Ok(OwnedPermit::leased(self.clone(), ttl))
    }

    /// Takes a permit only if one is free now; never waits and never jumps the queue.
    ///
    /// ```
    /// use floodgate::{Limiter, TryAcquireError};
    /// let limiter = Limiter::new(1);
    /// let held = limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    /// drop(held);
    /// assert!(limiter.try_acquire().is_ok());
    /// ```
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.try_take()?;
        Ok(Permit::new(self))
    }

    /// [`try_acquire`](Self::try_acquire) returning an [`OwnedPermit`].
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, TryAcquireError> {
        self.try_take()?;
        Ok(OwnedPermit::new(self.clone()))
    }

    fn try_take(&self) -> Result<(), TryAcquireError> {
        match self.engine.try_fast() {
            Fast::Acquired => Ok(()),
            Fast::Closed => {
                self.engine.reject(Rejected::Closed);
                Err(TryAcquireError::Closed)
            }
            Fast::Empty => {
                self.engine
                    .counters
                    .would_block
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.engine.metrics.count_would_block();
                Err(TryAcquireError::NoPermits)
            }
        }
    }

    /// A non-waiting take that counts no `would_block` (used by layers that wait afterwards).
    #[cfg(feature = "tower")]
    pub(crate) fn try_take_quiet(&self) -> Result<Option<OwnedPermit>, Rejected> {
        match self.engine.try_fast() {
            Fast::Acquired => Ok(Some(OwnedPermit::new(self.clone()))),
            Fast::Closed => Err(self.engine.reject(Rejected::Closed)),
            Fast::Empty => Ok(None),
        }
    }

    /// The rejection of a shed request, counted as `queue_full` with capacity 0.
    #[cfg(feature = "tower")]
    pub(crate) fn shed_rejection(&self) -> Rejected {
        self.engine.reject(Rejected::QueueFull { capacity: 0 })
    }

    /// Takes a permit for the caller, waiting per the limiter's settings.
    async fn wait(&self, priority: Priority) -> Result<(), Rejected> {
        match self.engine.try_fast() {
            Fast::Acquired => return Ok(()),
            Fast::Closed => return Err(self.engine.reject(Rejected::Closed)),
            Fast::Empty => {}
        }
        let acquire = AcquireFuture::new(&self.engine, priority.index());
        match self.engine.config.acquire_timeout {
            None => acquire.await,
            Some(timeout) => {
                let start = Instant::now();
                match tokio::time::timeout(timeout, acquire).await {
                    Ok(result) => result,
                    Err(_) => Err(self.engine.reject(Rejected::Timeout {
                        waited: start.elapsed(),
                    })),
                }
            }
        }
    }

    /// Changes the limit. Growing serves waiters at once; shrinking takes effect as permits
    /// come back and never revokes a held permit.
    ///
    /// ```
    /// let limiter = floodgate::Limiter::new(1);
    /// limiter.set_limit(8).unwrap();
    /// assert_eq!(limiter.available(), 8);
    /// assert!(limiter.set_limit(0).is_err());
    /// ```
    pub fn set_limit(&self, limit: usize) -> Result<(), LimiterError> {
        builder::check_limit(limit)?;
        self.engine.set_limit(limit);
        Ok(())
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.engine.limit()
    }

    /// Permits free right now.
    pub fn available(&self) -> usize {
        self.engine.available()
    }

    /// Permits held right now.
    pub fn active(&self) -> usize {
        self.engine.active()
    }

    /// Acquires waiting right now.
    pub fn queued(&self) -> usize {
        self.engine.queued()
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.engine.config.name
    }

    /// Closes the limiter: queued and future acquires fail with [`Rejected::Closed`]. Held
    /// permits stay valid and are returned as usual. Closing twice does nothing.
    pub fn close(&self) {
        self.engine.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }

    /// Closes the limiter and waits until every permit is back, or until `timeout` passes, in
    /// which case the error says how many permits were still held.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future stops waiting; the limiter stays closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = floodgate::Limiter::new(2);
    /// let permit = limiter.acquire_owned().await.unwrap();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     drop(permit);
    /// });
    /// assert!(limiter.drain(Duration::from_secs(5)).await.is_ok());
    /// # }
    /// ```
    pub async fn drain(&self, timeout: Duration) -> Result<(), DrainTimeout> {
        self.close();
        self.engine
            .wait_idle(timeout)
            .await
            .map_err(|still_held| DrainTimeout { still_held })
    }

    /// A snapshot of the limiter's state and counters.
    pub fn stats(&self) -> LimiterStats {
        let e = &self.engine;
        let c = &e.counters;
        use std::sync::atomic::Ordering::Relaxed;
        let acquired = c.acquired.load(Relaxed);
        let (wait_p50, wait_p99) = LimiterStats::wait_quantiles(c, acquired);
        LimiterStats {
            name: e.config.name.clone(),
            limit: e.limit(),
            active: e.active(),
            available: e.available(),
            queued: e.queued(),
            peak_active: c.peak.load(Relaxed),
            acquired,
            rejected: RejectedCounts {
                queue_full: c.queue_full.load(Relaxed),
                timeout: c.timeout.load(Relaxed),
                closed: c.closed.load(Relaxed),
                would_block: c.would_block.load(Relaxed),
            },
            expired: c.expired.load(Relaxed),
            wait_p50,
            wait_p99,
            closed: e.is_closed(),
        }
    }
}
