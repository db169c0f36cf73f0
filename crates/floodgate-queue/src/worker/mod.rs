//! The worker runtime: claims jobs from a [`Store`] and runs their handlers under a global
//! [`Limiter`], per-kind limits, priorities, timeouts, backoff and circuit breakers.
//!
//! * It claims what it can start now: the global limiter's free permits, split among the kinds
//!   with room (kinds with a `max_concurrency` are claimed on their own, highest kind priority
//!   first), in batches; and for kinds without a limit of their own, a bounded number more,
//!   the jobs it expects to start within about one claim round trip
//!   ([`WorkerBuilder::claim_ahead`]). Those are *held*: leased, waiting in a priority-ordered
//!   buffer, but not started in the store (reported `pending`; a cancel ends one at once and
//!   it never starts), given back when they would not start soon and at shutdown.
//! * A kind whose breaker is open is not claimed; a job its half-open breaker refuses goes
//!   back (snoozed) without spending an attempt. Outcomes feed the breaker.
//! * A heartbeat extends the leases of everything running (every third of the lease); a job
//!   whose lease was lost, or whose cancellation was asked for, has its context stopped, and a
//!   lost lease's result is never written (completion is fenced by the lease token).
//! * Handler panics and timeouts are failed attempts; the worker keeps running.
//! * Wake-ups come from the store (LISTEN/NOTIFY on PostgreSQL, in-process on SQLite) with a
//!   polling fallback, and from every finished job (capacity freed).
//! * Above a resident-memory high-water mark it stops claiming until memory falls below the
//!   low-water mark.
//! * [`WorkerHandle::shutdown`] stops claiming, lets running jobs finish until a deadline, then
//!   stops the rest and puts their jobs back to `pending` at once (not after the lease runs
//!   out), and reports the counts.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker};
//! use floodgate_queue::{NewJob, SqliteStore, Store};
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct Email { to: String }
//!
//! let store = SqliteStore::in_memory().await?;
//! let worker = Worker::builder(store.clone())
//!     .concurrency(10)
//!     .typed_handler("send_email", KindOptions::new().max_concurrency(4), |email: Email, _ctx| async move {
//!         if email.to.is_empty() {
//!             return Err(JobError::permanent("no recipient"));
//!         }
//!         Ok(Outcome::done())
//!     })
//!     .build()?;
//! let handle = worker.start();
//! let id = store.enqueue(NewJob::new("send_email", json!({"to": "ada"}))).await?.id;
//! while store.job(id).await?.unwrap().state != floodgate_queue::JobState::Succeeded {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! let summary = handle.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(summary.released, 0);
//! # Ok(()) }
//! ```

mod events;
mod handler;
mod kind;
mod memory;
mod run;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floodgate::Limiter;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use events::WorkerEvent;
pub use handler::{JobContext, JobError, Outcome};
pub use kind::{KindOptions, default_backoff};
pub use memory::MemoryWatch;
pub use stats::WorkerStats;

use crate::job::Job;
use crate::store::{DEFAULT_LEASE_TTL, Store};
use crate::wakeup::DEFAULT_POLL_INTERVAL;

/// A worker, built and not yet started. See the [module docs](self).
pub struct Worker<S: Store + Clone> {
    config: run::Config<S>,
}

impl<S: Store + Clone> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.config.id)
            .field("queues", &self.config.queues)
            .finish_non_exhaustive()
    }
}

/// Why a worker could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// No handler was registered: the worker would claim nothing.
    #[error("register at least one handler before building the worker")]
    NoHandlers,
    /// A setting is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Settings of a [`Worker`]; from [`Worker::builder`].
pub struct WorkerBuilder<S: Store + Clone> {
    store: S,
    id: String,
    queues: Vec<String>,
    kinds: HashMap<String, kind::Kind>,
    limiter: Option<Limiter>,
    concurrency: usize,
    claim_batch: u32,
    claim_ahead: Option<u32>,
    lease_ttl: Duration,
    poll_interval: Duration,
    memory: Option<MemoryWatch>,
    registry: Option<floodgate::breaker::BreakerRegistry>,
    skip_groups: Option<run::SkipGroups>,
}

impl<S: Store + Clone> Worker<S> {
    /// A worker on `store`: queue `default`, 10 jobs at once, leases of 5 minutes.
    pub fn builder(store: S) -> WorkerBuilder<S> {
        WorkerBuilder {
            store,
            id: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned()),
                std::process::id()
            ),
            queues: vec![crate::job::DEFAULT_QUEUE.to_owned()],
            kinds: HashMap::new(),
            limiter: None,
            concurrency: 10,
            claim_batch: 500,
            claim_ahead: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            poll_interval: DEFAULT_POLL_INTERVAL,
            memory: None,
            registry: None,
            skip_groups: None,
        }
    }

    /// Starts claiming and running jobs on the current Tokio runtime.
    pub fn start(self) -> WorkerHandle {
        run::start(self.config)
    }
}

impl<S: Store + Clone> WorkerBuilder<S> {
    /// The worker's id, recorded as the lease owner (default `<HOSTNAME>-<pid>`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The queues to take jobs from (default `default`).
    pub fn queues<I: IntoIterator<Item = Q>, Q: Into<String>>(mut self, queues: I) -> Self {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// At most `n` jobs run at once (default 10); ignored when [`limiter`](Self::limiter) is set.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Use this limiter as the global limit (shared with other work, resized at run time,
    /// or linked to a breaker registry's protective mode).
    pub fn limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// At most this many jobs per claim statement (default 500).
    pub fn claim_batch(mut self, n: u32) -> Self {
        self.claim_batch = n;
        self
    }

    /// At most this many jobs claimed beyond the free permits (default: the claim batch);
    /// 0 turns claiming ahead off.
    ///
    /// The worker claims ahead only what it expects to start within about one claim round
    /// trip, from the rate it starts jobs at and how long its running jobs take: short jobs
    /// are claimed in full batches, slow ones (a second each at a limit of 10) not ahead at
    /// all. Jobs claimed ahead are held, not started ([`Claim::hold`](crate::Claim::hold)):
    /// every reader reports them `pending`, and a cancel ends one at once, before it can
    /// start. They start in priority order, hold leases (extended by the heartbeat, rescued
    /// after a crash with their attempt unspent), and go back to `pending` in their place,
    /// without spending an attempt, when they would not start soon and at shutdown. Kinds
    /// with a per-kind or cluster-wide limit are never claimed ahead.
    pub fn claim_ahead(mut self, n: u32) -> Self {
        self.claim_ahead = Some(n);
        self
    }

    /// The lease each claim takes (default 5 minutes); heartbeats renew it every third.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How often to look for jobs when no wake-up comes (default 1 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Stop claiming above `watch.high` resident bytes, resume below `watch.low`, sampling
    /// every `watch.every` (off by default).
    pub fn memory_watch(mut self, watch: MemoryWatch) -> Self {
        self.memory = Some(watch);
        self
    }

    /// Reports `registry`'s protective-mode changes as [`WorkerEvent::ProtectiveMode`] (link
    /// the registry's protective mode to this worker's [`limiter`](Self::limiter) so that open
    /// breakers shrink how many jobs run).
    pub fn watch_registry(mut self, registry: &floodgate::breaker::BreakerRegistry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Before each claim, asks `groups` which job groups to leave unclaimed (see
    /// [`NewJob::group`](crate::NewJob::group)): the groups whose downstream is known to be
    /// down, such as destinations whose breaker is open. Their jobs stay pending, unclaimed
    /// and with no attempt spent, while the other groups' jobs keep flowing; once `groups`
    /// stops naming a group, its jobs are claimed at the next claim (at the latest one
    /// [`poll_interval`](Self::poll_interval) later). Keep `groups` cheap: it runs once per
    /// claim round.
    pub fn skip_groups<F>(mut self, groups: F) -> Self
    where
        F: Fn() -> Vec<String> + Send + Sync + 'static,
    {
        self.skip_groups = Some(Arc::new(groups));
        self
    }

    /// Runs jobs of `kind` with `f`, given the whole [`Job`], with default [`KindOptions`].
    pub fn handle<F, Fut>(self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Outcome, JobError>> + Send + 'static,
    {
        self.handler(kind, KindOptions::new(), f)
    }

    /// Runs jobs of `kind` with `f`, given the payload decoded as `T`, with default
    /// [`KindOptions`].
    pub fn handle_typed<T, F, Fut>(self, kind: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Outcome, JobError>> + Send + 'static,
    {
        self.typed_handler(kind, KindOptions::new(), f)
    }

    /// Runs jobs of `kind` with `handler`, given the whole [`Job`].
    pub fn handler<F, Fut>(mut self, kind: impl Into<String>, options: KindOptions, f: F) -> Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Outcome, JobError>> + Send + 'static,
    {
        let kind = kind.into();
        self.kinds.insert(
            kind.clone(),
            kind::Kind::new(kind, handler::raw(f), options),
        );
        self
    }

    /// Runs jobs of `kind` with `handler`, given the payload decoded as `T` (a payload that
    /// does not decode sends the job dead with the decoding error).
    pub fn typed_handler<T, F, Fut>(
        mut self,
        kind: impl Into<String>,
        options: KindOptions,
        f: F,
    ) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Outcome, JobError>> + Send + 'static,
    {
        let kind = kind.into();
        self.kinds.insert(
            kind.clone(),
            kind::Kind::new(kind, handler::typed(f), options),
        );
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Worker<S>, WorkerError> {
        let invalid = |field, reason: String| WorkerError::Invalid { field, reason };
        if self.kinds.is_empty() {
            return Err(WorkerError::NoHandlers);
        }
        if self.queues.is_empty() {
            return Err(invalid("queues", "name at least one queue".into()));
        }
        if self.lease_ttl < Duration::from_millis(30) {
            return Err(invalid(
                "lease_ttl",
                format!("{:?} is under 30 ms", self.lease_ttl),
            ));
        }
        if !(1..=10_000).contains(&self.claim_batch) {
            return Err(invalid(
                "claim_batch",
                format!("{} is outside 1..=10000", self.claim_batch),
            ));
        }
        if let Some(n) = self.claim_ahead
            && n > 10_000
        {
            return Err(invalid("claim_ahead", format!("{n} is over 10000")));
        }
        if let Some(m) = self.memory
            && (m.low > m.high || m.every.is_zero())
        {
            return Err(invalid(
                "memory_watch",
                format!(
                    "low ({}) must not exceed high ({}), and `every` must be positive",
                    m.low, m.high
                ),
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(invalid("poll_interval", "must be positive".into()));
        }
        let limiter = match self.limiter {
            Some(l) => l,
            None => Limiter::builder()
                .name(format!("worker:{}", self.id))
                .max_concurrency(self.concurrency)
                .build()
                .map_err(|e| invalid("concurrency", e.to_string()))?,
        };
        let (events, _) = broadcast::channel(1024);
        Ok(Worker {
            config: run::Config {
                store: self.store,
                id: self.id.into(),
                queues: self.queues,
                kinds: self.kinds.into_values().map(Arc::new).collect(),
                limiter,
                claim_batch: self.claim_batch,
                claim_ahead: self.claim_ahead.unwrap_or(self.claim_batch),
                lease_ttl: self.lease_ttl,
                poll_interval: self.poll_interval,
                memory: self.memory,
                registry: self.registry,
                skip_groups: self.skip_groups,
                events,
            },
        })
    }
}

/// A running worker: its events, and its shutdown.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    inner: Arc<run::Shared>,
}

/// What [`WorkerHandle::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Jobs running when shutdown began that finished before the deadline.
    pub finished: usize,
    /// Jobs still running at the deadline: stopped, and put back to `pending` for another
    /// worker to take at once.
    pub released: usize,
    /// Jobs claimed ahead that had not started: put back to `pending` at once, their attempt
    /// not spent.
    pub returned: usize,
}

impl WorkerHandle {
    /// A stream of what happens in the worker (lagging receivers skip ahead).
    pub fn events(&self) -> broadcast::Receiver<WorkerEvent> {
        self.inner.events.subscribe()
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.inner.running_count()
    }

    /// What the worker has done so far; every outcome is counted, even those whose event a
    /// slow reader of [`events`](Self::events) missed.
    pub fn stats(&self) -> WorkerStats {
        self.inner.stats()
    }

    /// Waits until the worker listens for wake-ups (or, if the store cannot notify, polls):
    /// from then on an enqueue is noticed at once. [`Worker::start`] returns before that.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    pub async fn ready(&self) {
        self.inner.ready().await
    }

    /// Stops claiming, waits up to `deadline` for running jobs, then stops the rest and puts
    /// their jobs back to `pending`. Calling it again waits for the first call's outcome.
    ///
    /// # Cancel safety
    ///
    /// Shutdown, once begun, goes on if this future is dropped (the claim loop has been told
    /// to stop); call it again to wait for its outcome.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownSummary {
        run::shutdown(&self.inner, deadline).await
    }

    /// Shuts the worker down (with `deadline`) when `shutdown` starts, as part of its drain.
    pub fn attach(&self, shutdown: &floodgate::shutdown::Shutdown, deadline: Duration) {
        let token: CancellationToken = shutdown.token();
        let handle = self.clone();
        shutdown.tracker().spawn(async move {
            token.cancelled().await;
            handle.shutdown(deadline).await;
        });
    }
}
