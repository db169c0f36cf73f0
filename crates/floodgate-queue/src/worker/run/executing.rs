//! One job's run: the handler under its timeout, with panics caught and cancellation (a
//! cancel request, a lost lease, the shutdown deadline) observed; then its outcome written.

use super::completing::complete;
use super::*;

/// How a run ended, before it is written.
enum Ran {
    Done(Result<Outcome, JobError>, BreakerOutcome),
    /// Stopped at the shutdown deadline.
    Stopped,
}

/// One claimed job about to run, with what it holds.
pub(super) struct Run<P> {
    pub(super) kind: Arc<Kind>,
    pub(super) job: Job,
    pub(super) lease: Lease,
    /// Cancelled on a cancel request, a lost lease, or the shutdown deadline.
    pub(super) stop: CancellationToken,
    pub(super) breaker: Option<CallPermit>,
    /// The global and per-kind limiter permits, released when the handler returns.
    pub(super) permits: P,
    /// When the job's task was spawned.
    pub(super) spawned: Instant,
}

pub(super) async fn execute<S: Store + Clone, P: Send>(
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
        spawned,
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
    if let Some(r) = lock(&shared.running).get_mut(&job.id) {
        r.began = Some(started);
    }
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
    // How long the job held its permit, its task's scheduling included: what the claim-ahead
    // estimate needs (a no-op handler's own time says nothing of the rate it can run at).
    shared.durations.record(spawned.elapsed());
    if let Some(r) = lock(&shared.running).get_mut(&job.id) {
        r.finishing = true;
    }
    // The handler is done: its capacity goes to the next job while the outcome is written.
    drop(permits);
    if shared.handoff {
        start_buffered(config, shared);
    }
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
                .map(|r| crate::json::validate("result", r))
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
pub(super) fn finish_store(
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
