//! The running worker, split along a job's data flow:
//!
//! * [`claiming`]: the claim loop, which takes what the limits leave room for (and, for short
//!   jobs, a bounded number more: [`prefetch`]) and starts one task per job;
//! * [`executing`]: one job's run (handler, timeout, panic, cancellation) and the writing of
//!   its outcome;
//! * [`completing`]: the batcher that writes successes together, with its retries;
//! * [`watching`]: the heartbeat that extends leases, and the memory watch;
//! * [`shutdown`]: the shutdown protocol.
//!
//! This file holds the state those tasks share and starts them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use floodgate::Limiter;
use floodgate::breaker::{CallPermit, Outcome as BreakerOutcome};
use futures_util::FutureExt;
use tokio::sync::{Notify, OnceCell, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::events::WorkerEvent;
use super::handler::{JobContext, JobError, Outcome};
use super::kind::Kind;
use super::memory::{MemoryWatch, resident_bytes};
use super::{ShutdownSummary, WorkerHandle};
use crate::error::StoreError;
use crate::job::{Job, JobId, JobState, Lease};
use crate::store::{Claim, Completion, LeaseStatus, Store};

mod claiming;
mod completing;
mod executing;
mod held;
mod prefetch;
mod shutdown;
mod watching;

pub(super) use shutdown::shutdown;

use claiming::dispatch;
use completing::complete_batches;
use held::start_buffered;
use watching::{heartbeat, watch_memory};

use super::WorkerStats;
use super::stats::Counters;

/// Which job groups a claim leaves alone (see `WorkerBuilder::skip_groups`).
pub(super) type SkipGroups = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The worker's settings, as built.
pub(super) struct Config<S> {
    pub(super) store: S,
    pub(super) id: Arc<str>,
    pub(super) queues: Vec<String>,
    pub(super) kinds: Vec<Arc<Kind>>,
    pub(super) limiter: Limiter,
    pub(super) claim_batch: u32,
    /// At most this many jobs claimed beyond the free permits (0: never).
    pub(super) claim_ahead: u32,
    pub(super) lease_ttl: Duration,
    pub(super) poll_interval: Duration,
    pub(super) memory: Option<MemoryWatch>,
    pub(super) registry: Option<floodgate::breaker::BreakerRegistry>,
    pub(super) skip_groups: Option<SkipGroups>,
    pub(super) events: broadcast::Sender<WorkerEvent>,
}

/// State shared by the worker's tasks and its handle.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) events: broadcast::Sender<WorkerEvent>,
    running: Mutex<HashMap<JobId, Running>>,
    // The tokens and trackers of the shutdown protocol (see `shutdown.rs`).
    stop_claiming: CancellationToken,
    hard_stop: CancellationToken,
    background_stop: CancellationToken,
    /// The claim loop.
    dispatcher: TaskTracker,
    /// One task per job.
    jobs: TaskTracker,
    /// Heartbeat, memory watch, completion batcher, event forwarders.
    background: TaskTracker,
    freed: Notify,
    memory_high: AtomicBool,
    finished_while_stopping: AtomicUsize,
    released: AtomicUsize,
    /// Jobs claimed ahead and put back at shutdown without starting.
    returned: AtomicUsize,
    /// Jobs claimed ahead of a free permit (held, not started), best first.
    prefetched: prefetch::Buffer,
    /// The recent handlers' run times (for how far ahead to claim).
    durations: prefetch::Durations,
    /// Held jobs whose start is recorded, waiting for a permit (see `held.rs`).
    recorded: Mutex<std::collections::VecDeque<Job>>,
    /// Ready jobs that waited too long: to give back.
    stale: Mutex<Vec<Job>>,
    /// How many held jobs to record ahead of the free permits (set by the claim loop).
    confirm_ahead: AtomicUsize,
    /// The round trip of `start_held`.
    start_round_trip: prefetch::Durations,
    /// Held jobs whose start is being recorded.
    recording: AtomicUsize,
    /// Wakes the stall watch when jobs are recorded ready.
    recorded_some: Notify,
    /// Whether `start_buffered` has a round out.
    starting: AtomicBool,
    /// Asked to start held jobs while a batch was out: one more round after it.
    start_again: AtomicBool,
    /// Whether a finishing job starts the next buffered one itself (when every kind is claimed
    /// in one group, so no other kind's claim has a better right to the permit).
    handoff: bool,
    summary: OnceCell<ShutdownSummary>,
    id: Arc<str>,
    /// Successful runs go to the completion batcher; taken (closed) at the end of shutdown.
    completer: Mutex<Option<mpsc::UnboundedSender<CompleteRequest>>>,
    /// Every outcome, counted as its event is emitted.
    counters: Counters,
    /// `true` once the claim loop listens for wake-ups.
    ready: tokio::sync::watch::Sender<bool>,
}

/// One successful run waiting to be written with others in one `complete_many`.
type CompleteRequest = (Completion, oneshot::Sender<Result<bool, String>>);

#[derive(Debug)]
struct Running {
    lease: Lease,
    /// When its handler began (its task may wait for a thread first).
    began: Option<Instant>,
    kind: Arc<str>,
    stop: CancellationToken,
    lost: bool,
    /// The handler has returned and the outcome is being written: a heartbeat that finds the
    /// lease gone raced the write, which reports a real loss itself.
    finishing: bool,
}

impl Shared {
    pub(super) fn running_count(&self) -> usize {
        lock(&self.running).len()
    }

    fn emit(&self, event: WorkerEvent) {
        self.counters.count(&event);
        let _ = self.events.send(event);
    }

    /// How long a job runs, as far as the worker knows: the longer of the recent handlers'
    /// average and the time the running handlers have all run so far (the youngest one's:
    /// when every running job has run that long, jobs take at least that long), in seconds;
    /// 0 before anything ran.
    fn job_duration(&self) -> f64 {
        let so_far = self.youngest_running().unwrap_or_default();
        self.durations.average().max(so_far.as_secs_f64())
    }

    /// How long the youngest running handler has run (a finished one, waiting for its
    /// outcome's write, does not count); `None` when none runs.
    fn youngest_running(&self) -> Option<Duration> {
        lock(&self.running)
            .values()
            .filter(|r| !r.finishing)
            .map(|r| r.began.map_or(Duration::ZERO, |b| b.elapsed()))
            .min()
    }

    pub(super) fn stats(&self) -> WorkerStats {
        let held = self.prefetched.len() + lock(&self.recorded).len() + lock(&self.stale).len();
        self.counters.snapshot(self.running_count(), held)
    }

    /// The leases of the held jobs, recorded or not (for the heartbeat).
    fn held_leases(&self) -> Vec<Lease> {
        let mut leases = self.prefetched.leases();
        leases.extend(lock(&self.recorded).iter().filter_map(Job::lease));
        leases.extend(lock(&self.stale).iter().filter_map(Job::lease));
        leases
    }

    pub(super) async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`: this cannot fail while we hold it.
        let _ = ready.wait_for(|r| *r).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn start<S: Store + Clone>(config: Config<S>) -> WorkerHandle {
    let shared = Arc::new(Shared {
        events: config.events.clone(),
        running: Mutex::new(HashMap::new()),
        stop_claiming: CancellationToken::new(),
        hard_stop: CancellationToken::new(),
        background_stop: CancellationToken::new(),
        dispatcher: TaskTracker::new(),
        jobs: TaskTracker::new(),
        background: TaskTracker::new(),
        freed: Notify::new(),
        memory_high: AtomicBool::new(false),
        finished_while_stopping: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        returned: AtomicUsize::new(0),
        prefetched: prefetch::Buffer::default(),
        durations: prefetch::Durations::default(),
        recorded: Mutex::new(std::collections::VecDeque::new()),
        stale: Mutex::new(Vec::new()),
        confirm_ahead: AtomicUsize::new(0),
        start_round_trip: prefetch::Durations::default(),
        recording: AtomicUsize::new(0),
        recorded_some: Notify::new(),
        starting: AtomicBool::new(false),
        start_again: AtomicBool::new(false),
        handoff: claiming::claimed_ahead(&config, &config.kinds),
        summary: OnceCell::new(),
        id: config.id.clone(),
        completer: Mutex::new(None),
        counters: Counters::default(),
        ready: tokio::sync::watch::channel(false).0,
    });
    let (completer, requests) = mpsc::unbounded_channel();
    *lock(&shared.completer) = Some(completer);
    let config = Arc::new(config);
    tracing::info!(worker = %config.id, queues = ?config.queues, "worker started");
    shared
        .dispatcher
        .spawn(dispatch(config.clone(), shared.clone()));
    shared
        .background
        .spawn(heartbeat(config.clone(), shared.clone()));
    shared
        .background
        .spawn(held::watch_stalls(config.clone(), shared.clone()));
    shared.background.spawn(complete_batches(
        config.store.clone(),
        config.id.clone(),
        requests,
    ));
    for kind in &config.kinds {
        if let Some(breaker) = &kind.options.breaker {
            let (rx, name) = (breaker.subscribe(), kind.name.clone());
            shared.background.spawn(forward(
                rx,
                shared.clone(),
                move |e: floodgate::breaker::BreakerEvent| {
                    Some(WorkerEvent::BreakerChanged {
                        kind: name.clone(),
                        from: e.from,
                        to: e.to,
                        reason: e.reason,
                    })
                },
            ));
        }
    }
    if let Some(registry) = &config.registry {
        shared
            .background
            .spawn(forward(registry.subscribe(), shared.clone(), |e| match e {
                floodgate::breaker::RegistryEvent::LimitChanged { open, limit, base } => {
                    Some(WorkerEvent::ProtectiveMode { open, limit, base })
                }
                _ => None,
            }));
    }
    if let Some(watch) = config.memory {
        shared
            .background
            .spawn(watch_memory(watch, config.id.clone(), shared.clone()));
    }
    WorkerHandle { inner: shared }
}

/// Re-emits another component's events as worker events until the worker stops.
async fn forward<E: Clone>(
    mut rx: broadcast::Receiver<E>,
    shared: Arc<Shared>,
    map: impl Fn(E) -> Option<WorkerEvent>,
) {
    loop {
        let event = tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            e = rx.recv() => e,
        };
        match event {
            Ok(e) => {
                if let Some(e) = map(e) {
                    shared.emit(e);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
