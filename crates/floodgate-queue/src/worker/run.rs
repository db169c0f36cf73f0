//! The running worker: the claim loop, one task per job, the heartbeat and the memory watch.

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

pub(super) struct Config<S> {
    pub(super) store: S,
    pub(super) id: Arc<str>,
    pub(super) queues: Vec<String>,
    pub(super) kinds: Vec<Arc<Kind>>,
    pub(super) limiter: Limiter,
    pub(super) claim_batch: u32,
    pub(super) lease_ttl: Duration,
    pub(super) poll_interval: Duration,
    pub(super) memory: Option<MemoryWatch>,
    pub(super) registry: Option<floodgate::breaker::BreakerRegistry>,
    pub(super) events: broadcast::Sender<WorkerEvent>,
}

/// State shared by the worker's tasks and its handle.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) events: broadcast::Sender<WorkerEvent>,
    running: Mutex<HashMap<JobId, Running>>,
    /// Set when shutdown starts: claim nothing more.
    stop_claiming: CancellationToken,
    /// Set at the shutdown deadline: stop handlers and put their jobs back.
    hard_stop: CancellationToken,
    /// Set when shutdown is over: background tasks end.
    background_stop: CancellationToken,
    /// The claim loop alone: shutdown waits for it (and so for a claim in flight) before it
    /// waits for the jobs, since a claim that lands after the wait would start jobs nobody
    /// waits for.
    dispatcher: TaskTracker,
    jobs: TaskTracker,
    background: TaskTracker,
    freed: Notify,
    memory_high: AtomicBool,
    finished_while_stopping: AtomicUsize,
    released: AtomicUsize,
    summary: OnceCell<ShutdownSummary>,
    id: Arc<str>,
    /// Successful runs go to the completion batcher; taken (closed) at the end of shutdown.
    completer: Mutex<Option<mpsc::UnboundedSender<CompleteRequest>>>,
}

/// One successful run waiting to be written with others in one `complete_many`.
type CompleteRequest = (Completion, oneshot::Sender<Result<bool, String>>);

#[derive(Debug)]
struct Running {
    lease: Lease,
    kind: Arc<str>,
    stop: CancellationToken,
    lost: bool,
}

impl Shared {
    pub(super) fn running_count(&self) -> usize {
        lock(&self.running).len()
    }

    fn emit(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
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
        summary: OnceCell::new(),
        id: config.id.clone(),
        completer: Mutex::new(None),
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

/// Kinds grouped for claiming: each limited kind alone, the unlimited ones together; highest
/// kind priority first.
fn claim_groups(kinds: &[Arc<Kind>]) -> Vec<Vec<Arc<Kind>>> {
    let mut groups: Vec<Vec<Arc<Kind>>> = Vec::new();
    let unlimited: Vec<Arc<Kind>> = kinds.iter().filter(|k| !k.limited()).cloned().collect();
    groups.extend(
        kinds
            .iter()
            .filter(|k| k.limited())
            .map(|k| vec![k.clone()]),
    );
    if !unlimited.is_empty() {
        groups.push(unlimited);
    }
    let priority = |g: &Vec<Arc<Kind>>| g.iter().map(|k| k.options.priority).max().unwrap_or(0);
    groups.sort_by_key(|g| std::cmp::Reverse(priority(g)));
    groups
}

async fn dispatch<S: Store + Clone>(config: Arc<Config<S>>, shared: Arc<Shared>) {
    let groups = claim_groups(&config.kinds);
    let mut wakeups = match config.store.listen().await {
        Ok(w) => Some(w.poll_interval(config.poll_interval)),
        Err(e) => {
            shared.emit(WorkerEvent::StoreError {
                error: format!("listen: {e}; polling only"),
            });
            None
        }
    };
    let mut tick = tokio::time::interval(config.poll_interval);
    loop {
        if claim_round(&config, &shared, &groups).await.is_err() {
            // The store is unreachable: back off one poll interval before trying again.
            tokio::select! {
                _ = shared.stop_claiming.cancelled() => return,
                _ = tokio::time::sleep(config.poll_interval) => continue,
            }
        }
        tokio::select! {
            biased;
            _ = shared.stop_claiming.cancelled() => return,
            _ = shared.freed.notified() => {
                // Jobs started together tend to end together: let the others that are ending
                // free their permits too, so one claim takes them all.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
            _ = async {
                match &mut wakeups {
                    Some(w) => { w.next().await; }
                    None => { tick.tick().await; }
                }
            } => {}
        }
    }
}

/// Claims and starts jobs while there is room and the claims come back full.
async fn claim_round<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    groups: &[Vec<Arc<Kind>>],
) -> Result<(), StoreError> {
    loop {
        let mut full = false;
        for group in groups {
            if shared.stop_claiming.is_cancelled() || shared.memory_high.load(Ordering::Relaxed) {
                return Ok(());
            }
            let global_free = config.limiter.available();
            if global_free == 0 {
                return Ok(());
            }
            let eligible: Vec<&Arc<Kind>> = group.iter().filter(|k| !k.blocked()).collect();
            let kind_free = eligible.iter().map(|k| k.free()).min().unwrap_or(0);
            let limit = global_free.min(kind_free).min(config.claim_batch as usize) as u32;
            if limit == 0 {
                continue;
            }
            let claim = Claim {
                worker_id: config.id.to_string(),
                queues: config.queues.clone(),
                kinds: eligible.iter().map(|k| k.name.clone()).collect(),
                limit,
                lease_ttl: config.lease_ttl,
                cluster_limit: match eligible.as_slice() {
                    [one] => one.options.cluster_max,
                    _ => None,
                },
            };
            let jobs = match config.store.claim(&claim).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(worker = %config.id, error = %e, "claim failed");
                    shared.emit(WorkerEvent::StoreError {
                        error: format!("claim: {e}"),
                    });
                    return Err(e);
                }
            };
            full |= jobs.len() == limit as usize;
            for job in jobs {
                start_job(config, shared, job);
            }
        }
        if !full {
            return Ok(());
        }
    }
}

fn start_job<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>, job: Job) {
    let lease = job.lease().expect("a claimed job is leased");
    let kind = config
        .kinds
        .iter()
        .find(|k| k.name == job.kind)
        .expect("only registered kinds are claimed")
        .clone();
    let global = config.limiter.try_acquire_owned();
    let local = kind.limiter.as_ref().map(Limiter::try_acquire_owned);
    let breaker = kind.options.breaker.as_ref().map(|b| b.try_acquire());
    let refused = match (&global, &local, &breaker) {
        (Err(_), ..) | (_, Some(Err(_)), _) => Some(Duration::from_millis(50)),
        (_, _, Some(Err(floodgate::breaker::BreakerError::Open { retry_after, .. }))) => {
            Some(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        (_, _, Some(Err(_))) => Some(Duration::from_secs(1)),
        _ => None,
    };
    if let Some(delay) = refused {
        // Claimed but not startable now (a half-open breaker out of probes): give it back
        // without spending the attempt.
        let store = config.store.clone();
        let shared2 = shared.clone();
        shared.jobs.spawn(async move {
            let until = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            finish_store(
                &shared2,
                &job,
                store.snooze(lease, until).await.map(|()| JobState::Pending),
                || WorkerEvent::Snoozed {
                    id: job.id,
                    kind: job.kind.clone(),
                    until,
                },
            );
        });
        return;
    }
    let breaker = breaker.map(|b| b.expect("checked above"));
    let permits = (
        global.expect("checked above"),
        local.map(|l| l.expect("checked above")),
    );
    let stop = shared.hard_stop.child_token();
    lock(&shared.running).insert(
        job.id,
        Running {
            lease,
            kind: job.kind.as_str().into(),
            stop: stop.clone(),
            lost: false,
        },
    );
    let config = config.clone();
    let shared = shared.clone();
    shared.clone().jobs.spawn(async move {
        let run = Run {
            kind,
            job,
            lease,
            stop,
            breaker,
            permits,
        };
        execute(&config, &shared, run).await;
        lock(&shared.running).remove(&lease.id);
        if shared.stop_claiming.is_cancelled() {
            shared
                .finished_while_stopping
                .fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// How a run ended, before it is written.
enum Ran {
    Done(Result<Outcome, JobError>, BreakerOutcome),
    /// Stopped at the shutdown deadline.
    Stopped,
}

/// One claimed job about to run, with what it holds.
struct Run<P> {
    kind: Arc<Kind>,
    job: Job,
    lease: Lease,
    /// Cancelled on a cancel request, a lost lease, or the shutdown deadline.
    stop: CancellationToken,
    breaker: Option<CallPermit>,
    /// The global and per-kind limiter permits, released when the handler returns.
    permits: P,
}

async fn execute<S: Store + Clone, P: Send>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    run: Run<P>,
) {
    let Run {
        kind,
        job,
        lease,
        stop,
        breaker,
        permits,
    } = run;
    let labels = [("queue", job.queue.clone()), ("kind", job.kind.clone())];
    metrics::counter!("floodgate_jobs_started_total", &labels).increment(1);
    let running = metrics::gauge!("floodgate_jobs_running", "kind" => job.kind.clone());
    running.increment(1.0);
    shared.emit(WorkerEvent::Started {
        id: job.id,
        kind: job.kind.clone(),
        attempt: job.attempt,
    });
    let ctx = JobContext {
        id: job.id,
        attempt: job.attempt,
        worker_id: config.id.clone(),
        stop: stop.clone(),
    };
    let started = Instant::now();
    let run = AssertUnwindSafe((kind.handler)(job.clone(), ctx)).catch_unwind();
    let timeout = kind.options.timeout;
    let ran = tokio::select! {
        r = async {
            match timeout {
                Some(t) => tokio::time::timeout(t, run).await.map_err(|_| t),
                None => Ok(run.await),
            }
        } => match r {
            Ok(Ok(Ok(outcome))) => Ran::Done(Ok(outcome), BreakerOutcome::Success),
            Ok(Ok(Err(e))) => {
                let b = match e {
                    JobError::Retry { .. } => BreakerOutcome::Failure,
                    JobError::Permanent { .. } => BreakerOutcome::Permanent,
                    JobError::Snooze { .. } => BreakerOutcome::Ignored,
                };
                Ran::Done(Err(e), b)
            }
            Ok(Err(panic)) => Ran::Done(
                Err(JobError::retry(format!("handler panicked: {}", panic_message(&*panic)))),
                BreakerOutcome::Failure,
            ),
            Err(t) => Ran::Done(
                Err(JobError::retry(format!("timed out after {t:?}"))),
                BreakerOutcome::Failure,
            ),
        },
        _ = shared.hard_stop.cancelled() => Ran::Stopped,
    };
    let took = started.elapsed();
    // The handler is done: its capacity goes to the next job while the outcome is written.
    drop(permits);
    shared.freed.notify_one();
    running.decrement(1.0);
    metrics::histogram!("floodgate_jobs_duration_seconds", "kind" => job.kind.clone())
        .record(took.as_secs_f64());
    let store = &config.store;
    match ran {
        Ran::Stopped => {
            if let Some(b) = breaker {
                b.record(BreakerOutcome::Ignored, None);
            }
            let until = Utc::now();
            let written = store.snooze(lease, until).await.map(|()| JobState::Pending);
            if written.is_ok() {
                shared.released.fetch_add(1, Ordering::Relaxed);
            }
            finish_store(shared, &job, written, || WorkerEvent::Snoozed {
                id: job.id,
                kind: job.kind.clone(),
                until,
            });
        }
        Ran::Done(result, outcome) => {
            if let Some(b) = breaker {
                let message = result.as_ref().err().map(ToString::to_string);
                b.record(
                    outcome,
                    message.as_ref().map(|m| m as &dyn std::fmt::Display),
                );
            }
            write_outcome(store, shared, &kind, &job, lease, result, took).await;
        }
    }
}

async fn write_outcome<S: Store>(
    store: &S,
    shared: &Arc<Shared>,
    kind: &Kind,
    job: &Job,
    lease: Lease,
    result: Result<Outcome, JobError>,
    took: Duration,
) {
    let (id, k) = (job.id, job.kind.clone());
    match result {
        Ok(outcome) => {
            // A result the store would refuse (too deep, a NUL) is the handler's bug: the job
            // goes dead with the reason instead of failing the whole completion batch.
            if let Some(Err(e)) = outcome
                .result
                .as_ref()
                .map(|r| crate::store::json::validate("result", r))
            {
                let message = format!("the handler's result cannot be stored: {e}");
                return bury(store, shared, job, lease, message).await;
            }
            let written = complete(store, shared, lease, outcome.result).await;
            finish_store(shared, job, written.map(|()| JobState::Succeeded), || {
                WorkerEvent::Succeeded {
                    id,
                    kind: k.clone(),
                    took,
                }
            });
        }
        Err(JobError::Retry { message, after }) => {
            let elapsed = (Utc::now() - job.created_at).to_std().unwrap_or_default();
            let delay = after.or_else(|| kind.options.retry.next_delay(job.attempt, elapsed, None));
            match delay {
                Some(delay) => {
                    let retry_at =
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    let written = store.fail(lease, &message, retry_at).await;
                    let event = |state: JobState| match state {
                        JobState::Dead => WorkerEvent::Dead {
                            id,
                            kind: k.clone(),
                            error: message.clone(),
                        },
                        JobState::Cancelled => WorkerEvent::Cancelled {
                            id,
                            kind: k.clone(),
                        },
                        _ => WorkerEvent::Failed {
                            id,
                            kind: k.clone(),
                            error: message.clone(),
                            retry_at,
                        },
                    };
                    let state = written.as_ref().ok().copied();
                    finish_store(shared, job, written, || {
                        event(state.unwrap_or(JobState::Failed))
                    });
                }
                // The kind's backoff says stop: dead now, whatever attempts remain.
                None => bury(store, shared, job, lease, message).await,
            }
        }
        Err(JobError::Permanent { message }) => bury(store, shared, job, lease, message).await,
        Err(JobError::Snooze { until }) => {
            let written = store.snooze(lease, until).await;
            finish_store(shared, job, written.map(|()| JobState::Pending), || {
                WorkerEvent::Snoozed {
                    id,
                    kind: k.clone(),
                    until,
                }
            });
        }
    }
}

/// Sends a job dead with `message` as its last error.
async fn bury<S: Store>(store: &S, shared: &Shared, job: &Job, lease: Lease, message: String) {
    let written = store.dead(lease, &message).await;
    finish_store(shared, job, written.map(|()| JobState::Dead), || {
        WorkerEvent::Dead {
            id: job.id,
            kind: job.kind.clone(),
            error: message,
        }
    });
}

/// Reports what writing a run's end did: its event, a lost lease, or a store failure (the
/// job is then rescued when its lease runs out).
fn finish_store(
    shared: &Shared,
    job: &Job,
    written: Result<JobState, StoreError>,
    event: impl FnOnce() -> WorkerEvent,
) {
    let outcome = match &written {
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Dead) => "dead",
        Ok(JobState::Cancelled) => "cancelled",
        Ok(_) => "snoozed",
        Err(StoreError::LeaseLost { .. }) => "lease_lost",
        Err(_) => "store_error",
    };
    metrics::counter!(
        "floodgate_jobs_finished_total",
        "queue" => job.queue.clone(),
        "kind" => job.kind.clone(),
        "outcome" => outcome
    )
    .increment(1);
    match written {
        Ok(_) => shared.emit(event()),
        Err(StoreError::LeaseLost { .. }) => {
            // Reported once: the heartbeat may have seen it first.
            let seen = lock(&shared.running).get(&job.id).is_some_and(|r| r.lost);
            if !seen {
                shared.emit(WorkerEvent::LeaseLost {
                    id: job.id,
                    kind: job.kind.clone(),
                });
            }
        }
        Err(e) => {
            tracing::warn!(worker = %shared.id, job = %job.id, error = %e, "could not record a job's end; its lease will expire and it will be rescued");
            shared.emit(WorkerEvent::StoreError {
                error: format!("finishing job {}: {e}", job.id),
            });
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Records a success through the completion batcher (one `complete_many` for every success
/// waiting at that moment), or directly once the batcher is gone.
async fn complete<S: Store>(
    store: &S,
    shared: &Shared,
    lease: Lease,
    result: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    let sender = lock(&shared.completer).clone();
    let Some(sender) = sender else {
        return store.complete(lease, result).await;
    };
    let (reply, answer) = oneshot::channel();
    if sender.send((Completion { lease, result }, reply)).is_err() {
        return Err(StoreError::Corrupt("the completion batcher stopped".into()));
    }
    match answer.await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err(StoreError::LeaseLost { id: lease.id }),
        Ok(Err(e)) => Err(StoreError::Corrupt(format!("batch completion failed: {e}"))),
        Err(_) => Err(StoreError::Corrupt("the completion batcher stopped".into())),
    }
}

/// Writes successes in batches: whatever is waiting when the previous batch is done, up to
/// 500, in one statement. No timer: an idle worker's lone success is written at once.
async fn complete_batches<S: Store>(
    store: S,
    worker_id: Arc<str>,
    mut requests: mpsc::UnboundedReceiver<CompleteRequest>,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let completions: Vec<Completion> = batch.iter().map(|(c, _)| c.clone()).collect();
        match complete_with_retries(&store, &worker_id, completions).await {
            Ok(lost) => {
                for (c, reply) in batch {
                    let _ = reply.send(Ok(lost.contains(&c.lease.id)));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// `complete_many`, tried again on a database error (a connection the server dropped fails
/// once, then the pool opens another). A retry cannot tell a job it completed itself in an
/// attempt whose answer was lost from one whose lease was lost, so after a retry the jobs it
/// calls lost are looked up: those `succeeded` with this worker as the last lease owner count
/// as done.
async fn complete_with_retries<S: Store>(
    store: &S,
    worker_id: &str,
    completions: Vec<Completion>,
) -> Result<Vec<JobId>, StoreError> {
    let mut delay = Duration::from_millis(20);
    let mut retried = false;
    loop {
        match store.complete_many(completions.clone()).await {
            Ok(lost) if !retried || lost.is_empty() => return Ok(lost),
            Ok(lost) => {
                let mut really_lost = Vec::with_capacity(lost.len());
                for id in lost {
                    let done = store.job(id).await?.is_some_and(|j| {
                        j.state == JobState::Succeeded
                            && j.lease_owner.as_deref() == Some(worker_id)
                    });
                    if !done {
                        really_lost.push(id);
                    }
                }
                return Ok(really_lost);
            }
            Err(StoreError::Database(e)) if delay <= Duration::from_millis(640) => {
                tracing::warn!(error = %e, retry_in = ?delay, "completion batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Extends the leases of everything running every third of the lease.
async fn heartbeat<S: Store + Clone>(config: Arc<Config<S>>, shared: Arc<Shared>) {
    let every = config.lease_ttl / 3;
    loop {
        tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let leases: Vec<Lease> = lock(&shared.running)
            .values()
            .filter(|r| !r.lost)
            .map(|r| r.lease)
            .collect();
        if leases.is_empty() {
            continue;
        }
        let statuses = match config
            .store
            .extend_leases(&config.id, &leases, config.lease_ttl)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                shared.emit(WorkerEvent::StoreError {
                    error: format!("heartbeat: {e}"),
                });
                continue;
            }
        };
        let mut running = lock(&shared.running);
        for (lease, status) in leases.iter().zip(statuses) {
            let Some(r) = running.get_mut(&lease.id) else {
                continue;
            };
            match status {
                LeaseStatus::Extended => {}
                LeaseStatus::CancelRequested => r.stop.cancel(),
                LeaseStatus::Lost => {
                    r.lost = true;
                    r.stop.cancel();
                    tracing::warn!(worker = %config.id, job = %lease.id, "lease lost");
                    shared.emit(WorkerEvent::LeaseLost {
                        id: lease.id,
                        kind: r.kind.to_string(),
                    });
                }
            }
        }
    }
}

async fn watch_memory(watch: MemoryWatch, id: Arc<str>, shared: Arc<Shared>) {
    let gauge = metrics::gauge!("floodgate_worker_memory_high", "worker" => id.to_string());
    loop {
        tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            _ = tokio::time::sleep(watch.every) => {}
        }
        let Some(rss) = resident_bytes() else { return };
        let high = shared.memory_high.load(Ordering::Relaxed);
        if !high && rss > watch.high {
            shared.memory_high.store(true, Ordering::Relaxed);
            gauge.set(1.0);
            tracing::warn!(worker = %id, rss, "memory above the high-water mark: claiming paused");
            shared.emit(WorkerEvent::MemoryHigh { rss });
        } else if high && rss < watch.low {
            shared.memory_high.store(false, Ordering::Relaxed);
            gauge.set(0.0);
            tracing::info!(worker = %id, rss, "memory below the low-water mark: claiming resumed");
            shared.emit(WorkerEvent::MemoryNormal { rss });
            shared.freed.notify_one();
        }
    }
}

pub(super) async fn shutdown(shared: &Arc<Shared>, deadline: Duration) -> ShutdownSummary {
    *shared
        .summary
        .get_or_init(|| async {
            tracing::info!(worker = %shared.id, running = shared.running_count(), "worker shutting down");
            let deadline = tokio::time::Instant::now() + deadline;
            shared.stop_claiming.cancel();
            // First the claim loop: a claim in flight finishes and its jobs start, so that
            // the wait below covers every job this worker claimed.
            shared.dispatcher.close();
            let claims_over = tokio::time::timeout_at(deadline, shared.dispatcher.wait()).await;
            shared.jobs.close();
            if claims_over.is_err()
                || tokio::time::timeout_at(deadline, shared.jobs.wait()).await.is_err()
            {
                shared.hard_stop.cancel();
                // Jobs a late claim still starts see the hard stop and are released at once.
                shared.dispatcher.wait().await;
                shared.jobs.wait().await;
            }
            lock(&shared.completer).take();
            shared.background_stop.cancel();
            shared.background.close();
            shared.background.wait().await;
            let summary = ShutdownSummary {
                finished: shared.finished_while_stopping.load(Ordering::Relaxed)
                    - shared.released.load(Ordering::Relaxed),
                released: shared.released.load(Ordering::Relaxed),
            };
            tracing::info!(worker = %shared.id, ?summary, "worker stopped");
            summary
        })
        .await
}
