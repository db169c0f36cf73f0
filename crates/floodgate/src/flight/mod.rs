//! Single-flight: concurrent calls for one key share one execution (cache-stampede
//! protection).
//!
//! The first caller for a key starts the work; callers that arrive while it runs wait for the
//! same result (`V` and `E` are cloned to each). The key's entry is removed when the work ends,
//! whatever the outcome, so nothing accumulates and the next call starts afresh.
//!
//! **Cancellation.** The work runs as a Tokio task of its own, detached from the caller that
//! started it: if that caller is cancelled (its future dropped, its request timed out), the
//! work goes on and every waiter still gets the result. This was chosen over handing the work
//! to a waiter because a hand-off needs every waiter to carry a copy of the work, and it can't
//! produce two leaders for one key: the entry exists from the first call until the work ends.
//! A panic in the work is caught and returned to every waiter as [`FlightError::Panicked`].
//!
//! Optional: a [`FlightCache`] consulted before starting work and filled after a success (with
//! a TTL), and a per-call timeout on the wait (the work itself continues).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use floodgate::flight::SingleFlight;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flight: SingleFlight<String, u64, String> = SingleFlight::new("user-profile");
//! let loads = Arc::new(AtomicU32::new(0));
//! let calls: Vec<_> = (0..100)
//!     .map(|_| {
//!         let (flight, loads) = (flight.clone(), loads.clone());
//!         tokio::spawn(async move {
//!             flight
//!                 .run("user:42".to_owned(), move || async move {
//!                     loads.fetch_add(1, Ordering::SeqCst);
//!                     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//!                     Ok(42)
//!                 })
//!                 .await
//!         })
//!     })
//!     .collect();
//! for c in calls {
//!     assert_eq!(c.await.unwrap(), Ok(42));
//! }
//! assert_eq!(loads.load(Ordering::SeqCst), 1);
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::Counter;
use tokio::sync::watch;

use crate::isolate::{Isolated, isolate, panic_message};
use crate::sync::{Mutex, lock};

/// Why a single-flight call has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlightError<E> {
    /// The work returned this error (shared by every waiter).
    #[error(transparent)]
    Failed(E),
    /// The work panicked.
    #[error("the shared work panicked: {0}")]
    Panicked(String),
    /// This caller's wait passed the per-call timeout (the work goes on for the others).
    #[error("waited {0:?} for the shared work")]
    Timeout(Duration),
    /// The work's task was aborted (e.g. the runtime shut down) before it finished.
    #[error("the shared work was abandoned before it finished")]
    Abandoned,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache consulted before running the work and filled after a success.
pub trait FlightCache<K, V>: Send + Sync + 'static {
    /// A cached value for `key`, if any.
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Option<V>>;
    /// Stores `value` for `key` for `ttl`.
    fn set<'a>(&'a self, key: &'a K, value: &'a V, ttl: Duration) -> BoxFuture<'a, ()>;
}

type Slot<V, E> = watch::Receiver<Option<Result<V, FlightError<E>>>>;

struct Inner<K, V, E> {
    name: String,
    flights: Mutex<HashMap<K, Slot<V, E>>>,
    cache: Option<(Arc<dyn FlightCache<K, V>>, Duration)>,
    timeout: Option<Duration>,
    calls: AtomicU64,
    executions: AtomicU64,
    deduplicated: AtomicU64,
    cache_hits: AtomicU64,
    executed_metric: Counter,
    deduplicated_metric: Counter,
    cache_hit_metric: Counter,
}

/// Counters of a [`SingleFlight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlightStats {
    /// Calls made.
    pub calls: u64,
    /// Times the work actually ran.
    pub executions: u64,
    /// Calls that joined work already running.
    pub deduplicated: u64,
    /// Calls answered by the cache.
    pub cache_hits: u64,
    /// Keys whose work is running now.
    pub in_flight: usize,
}

/// Shares one execution among concurrent calls for the same key; see the [module docs](self).
/// Cloning shares the in-flight table.
pub struct SingleFlight<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for SingleFlight<K, V, E> {
    fn clone(&self) -> Self {
        SingleFlight {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, E> std::fmt::Debug for SingleFlight<K, V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// A single-flight group; `name` labels its metrics (`flight="..."`).
    pub fn new(name: impl Into<String>) -> Self {
        Self::build(name.into(), None, None)
    }

    /// Consults `cache` before running work, and stores successes in it for `ttl`.
    pub fn with_cache(self, cache: Arc<dyn FlightCache<K, V>>, ttl: Duration) -> Self {
        Self::build(
            self.inner.name.clone(),
            Some((cache, ttl)),
            self.inner.timeout,
        )
    }

    /// Each caller waits at most `timeout` for the shared work (which itself goes on).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self::build(
            self.inner.name.clone(),
            self.inner.cache.clone(),
            Some(timeout),
        )
    }

    fn build(
        name: String,
        cache: Option<(Arc<dyn FlightCache<K, V>>, Duration)>,
        timeout: Option<Duration>,
    ) -> Self {
        let counter = |result: &'static str| metrics::counter!("floodgate_flight_calls_total", "flight" => name.clone(), "result" => result);
        SingleFlight {
            inner: Arc::new(Inner {
                flights: Mutex::new(HashMap::new()),
                cache,
                timeout,
                calls: AtomicU64::new(0),
                executions: AtomicU64::new(0),
                deduplicated: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                executed_metric: counter("executed"),
                deduplicated_metric: counter("deduplicated"),
                cache_hit_metric: counter("cache_hit"),
                name,
            }),
        }
    }

    /// Runs `work` for `key`, or joins the run already in flight for it.
    ///
    /// `work` is called only by the caller that starts the run, and the future it returns runs
    /// as a Tokio task (so it must be `Send + 'static`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future stops waiting; the work goes on for the other callers
    /// (and fills the cache).
    ///
    /// A panic in `work` itself (while making the future) or in the future is returned to
    /// every caller as [`FlightError::Panicked`], and the key is free for the next call.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, when this call has to start the work (nothing is left
    /// behind: the key stays usable).
    pub async fn run<F, Fut>(&self, key: K, work: F) -> Result<V, FlightError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let i = &self.inner;
        i.calls.fetch_add(1, Relaxed);
        if let Some((cache, _)) = &i.cache
            && let Some(v) = cache.get(&key).await
        {
            i.cache_hits.fetch_add(1, Relaxed);
            i.cache_hit_metric.increment(1);
            return Ok(v);
        }
        let mut slot = {
            let mut flights = lock(&i.flights);
            match flights.get(&key) {
                Some(slot) => {
                    i.deduplicated.fetch_add(1, Relaxed);
                    i.deduplicated_metric.increment(1);
                    slot.clone()
                }
                None => {
                    // Checked before the entry exists, so a call outside a runtime poisons
                    // nothing.
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        drop(flights);
                        panic!(
                            "SingleFlight::run({}) must be called inside a Tokio runtime",
                            i.name
                        );
                    };
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), rx.clone());
                    drop(flights);
                    i.executions.fetch_add(1, Relaxed);
                    i.executed_metric.increment(1);
                    // From here on the entry is removed however this call ends, unless the
                    // spawned task takes it over.
                    let mut entry = Entry {
                        inner: &self.inner,
                        key: Some(&key),
                    };
                    let fut = match std::panic::catch_unwind(AssertUnwindSafe(work)) {
                        Ok(fut) => fut,
                        Err(panic) => {
                            let error = FlightError::Panicked(panic_message(&*panic));
                            drop(entry);
                            let _ = tx.send(Some(Err(error.clone())));
                            return Err(error);
                        }
                    };
                    entry.key = None;
                    drop(entry);
                    self.spawn(&runtime, key, fut, tx);
                    rx
                }
            }
        };
        let wait = slot.wait_for(Option::is_some);
        let ready = match i.timeout {
            None => wait.await.map(|r| r.clone()),
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r.map(|r| r.clone()),
                Err(_) => return Err(FlightError::Timeout(t)),
            },
        };
        match ready {
            Ok(Some(result)) => result,
            _ => Err(FlightError::Abandoned),
        }
    }

    fn spawn<Fut>(
        &self,
        runtime: &tokio::runtime::Handle,
        key: K,
        work: Fut,
        tx: watch::Sender<Option<Result<V, FlightError<E>>>>,
    ) where
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let inner = self.inner.clone();
        runtime.spawn(async move {
            // Removes the entry however the task ends (finished, or aborted at shutdown).
            let _entry = Entry {
                inner: &inner,
                key: Some(&key),
            };
            // No timeout: the per-call timeout bounds each caller's wait, not the work.
            let result = match isolate(work, None).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(FlightError::Failed(e)),
                Err(Isolated::Panicked(message)) => Err(FlightError::Panicked(message)),
                Err(Isolated::TimedOut(_)) => unreachable!("isolated without a timeout"),
            };
            if let (Ok(v), Some((cache, ttl))) = (&result, &inner.cache) {
                cache.set(&key, v, *ttl).await;
            }
            let _ = tx.send(Some(result));
        });
    }

    /// Counters so far.
    pub fn stats(&self) -> FlightStats {
        let i = &self.inner;
        FlightStats {
            calls: i.calls.load(Relaxed),
            executions: i.executions.load(Relaxed),
            deduplicated: i.deduplicated.load(Relaxed),
            cache_hits: i.cache_hits.load(Relaxed),
            in_flight: lock(&i.flights).len(),
        }
    }
}

struct Entry<'a, K: Hash + Eq, V, E> {
    inner: &'a Inner<K, V, E>,
    key: Option<&'a K>,
}

impl<K: Hash + Eq, V, E> Drop for Entry<'_, K, V, E> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.inner.flights).remove(key);
        }
    }
}
