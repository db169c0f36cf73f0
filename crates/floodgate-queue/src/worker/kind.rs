//! Per-kind settings: concurrency, priority, timeout, backoff and circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use floodgate::Limiter;
use floodgate::breaker::CircuitBreaker;
use floodgate::retry::{ExponentialBackoff, Jitter, RetryPolicy};

use super::handler::Handler;

/// How jobs of one kind run. Everything is optional; the defaults are the worker's.
///
/// ```
/// use std::time::Duration;
/// use floodgate_queue::worker::KindOptions;
///
/// let options = KindOptions::new()
///     .max_concurrency(40)   // at most 40 of this kind at once in this worker
///     .priority(10)          // served first when capacity is short
///     .timeout(Duration::from_secs(30));
/// ```
#[derive(Clone)]
pub struct KindOptions {
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) cluster_max: Option<u32>,
    pub(crate) priority: u8,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Arc<dyn RetryPolicy>,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl std::fmt::Debug for KindOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindOptions")
            .field("max_concurrency", &self.max_concurrency)
            .field("cluster_max", &self.cluster_max)
            .field("priority", &self.priority)
            .field("timeout", &self.timeout)
            .field(
                "breaker",
                &self.breaker.as_ref().map(|b| b.name().to_owned()),
            )
            .finish_non_exhaustive()
    }
}

impl Default for KindOptions {
    fn default() -> Self {
        KindOptions::new()
    }
}

/// The backoff between a kind's attempts unless [`KindOptions::retry`] says otherwise:
/// exponential from 1 s, doubling, capped at 1 hour, full jitter. (How many attempts is the
/// job's `max_attempts`, 25 by default.)
pub fn default_backoff() -> ExponentialBackoff {
    ExponentialBackoff::new(Duration::from_secs(1))
        .factor(2.0)
        .cap(Duration::from_secs(3600))
        .max_attempts(u32::MAX)
        .jitter(Jitter::Full)
}

impl KindOptions {
    /// No per-kind limit, priority 5, no timeout, the default backoff, no breaker.
    pub fn new() -> Self {
        KindOptions {
            max_concurrency: None,
            cluster_max: None,
            priority: 5,
            timeout: None,
            retry: Arc::new(default_backoff()),
            breaker: None,
        }
    }

    /// At most `n` jobs of this kind run at once in this worker (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// At most `n` jobs of this kind run at once across every worker sharing the store
    /// (checked inside each claim under a per-kind lock, so racing nodes cannot exceed it).
    pub fn cluster_max(mut self, n: u32) -> Self {
        self.cluster_max = Some(n);
        self
    }

    /// When capacity is short, kinds of higher priority (1..=10) are claimed first.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority.clamp(1, 10);
        self
    }

    /// An attempt running longer fails (and is retried).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The backoff between attempts; when it says stop, the job goes dead.
    pub fn retry(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// A circuit breaker for the dependency this kind calls: while it is open, the kind's jobs
    /// are not claimed; claimed jobs it refuses are snoozed without spending an attempt.
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

/// A registered kind at run time.
pub(crate) struct Kind {
    pub(crate) name: String,
    pub(crate) handler: Handler,
    pub(crate) options: KindOptions,
    pub(crate) limiter: Option<Limiter>,
}

impl Kind {
    pub(crate) fn new(name: String, handler: Handler, options: KindOptions) -> Self {
        let limiter = options.max_concurrency.map(|n| {
            Limiter::builder()
                .name(format!("kind:{name}"))
                .max_concurrency(n)
                .build()
                .expect("a positive limit")
        });
        Kind {
            name,
            handler,
            options,
            limiter,
        }
    }

    /// Whether this kind is claimed on its own (it has a limit of its own).
    pub(crate) fn limited(&self) -> bool {
        self.limiter.is_some() || self.options.cluster_max.is_some()
    }

    /// How many more of this kind can start now.
    pub(crate) fn free(&self) -> usize {
        self.limiter.as_ref().map_or(usize::MAX, Limiter::available)
    }

    /// Whether the kind's breaker is half-open (only its probes may start).
    pub(crate) fn probing(&self) -> bool {
        self.options
            .breaker
            .as_ref()
            .is_some_and(|b| b.state() == floodgate::breaker::State::HalfOpen)
    }

    /// Whether the breaker keeps this kind from being claimed.
    pub(crate) fn blocked(&self) -> bool {
        self.options.breaker.as_ref().is_some_and(|b| {
            matches!(
                b.state(),
                floodgate::breaker::State::Open | floodgate::breaker::State::ForcedOpen
            )
        })
    }
}
