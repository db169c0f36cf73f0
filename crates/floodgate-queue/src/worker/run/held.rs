//! Held jobs (claimed ahead, see [`prefetch`](super::prefetch)) leaving the buffer: their
//! starts recorded in batches just ahead of the permits, given back when they would not start
//! soon, and given back at shutdown.
//!
//! # Implementation
//!
//! A held job starts only through `Store::start_held`, which records its start if it is still
//! held: a cancel that returned before that statement ended the job in the store, and the
//! statement says so. So that no permit waits on that round trip, starts are recorded a
//! little ahead: each batch takes the free permits' worth of the best held jobs plus the
//! *confirm-ahead* (the jobs the worker expects to start during two such round trips; none
//! for slow jobs; set by the claim loop),
//! and the recorded jobs wait in a short *ready* queue, from which a finishing job's task
//! starts the next one at once. A cancel that comes in that window finds the job `running`
//! and asks it to stop. When every permit is held by a handler that has run for
//! [`STALLED_AFTER`] while jobs are ready (slow jobs took the permits since they were
//! recorded), the ready jobs are not run: they go back in their place with every other held
//! job (so none starts out of priority order), their attempt unspent, or end `cancelled` if a
//! cancel was asked for meanwhile; so a job never starts long after a cancel was answered.
//!
//! One batch is out at a time (two in flight measured slower: smaller batches, more
//! statements); a request that comes while it is out (a job finishing, a claim landing) marks
//! one more round. A batch that cannot be written puts its jobs back in
//! the buffer; the claim loop asks again on its next round.

use std::sync::atomic::Ordering::SeqCst;

use super::claiming::start_job;
use super::executing::finish_store;
use super::*;
use crate::store::HeldStatus;

/// Starts ready jobs while permits are free, and has held jobs recorded as they will be
/// needed (see the module doc).
pub(super) fn start_buffered<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>) {
    run_ready(config, shared);
    if !wants_round(config, shared) {
        return;
    }
    if shared.starting.swap(true, SeqCst) {
        shared.start_again.store(true, SeqCst);
        return;
    }
    let (config, shared) = (config.clone(), shared.clone());
    shared.clone().jobs.spawn(async move {
        loop {
            shared.start_again.store(false, SeqCst);
            if !round(&config, &shared).await {
                shared.starting.store(false, SeqCst);
                // A request that came after this round looked gets its round.
                if shared.start_again.load(SeqCst)
                    && wants_round(&config, &shared)
                    && !shared.starting.swap(true, SeqCst)
                {
                    continue;
                }
                return;
            }
        }
    });
}

/// How long every permit may be held by one handler while jobs are ready before they are
/// given back: slower jobs than those they were recorded for took the permits.
pub(super) const STALLED_AFTER: Duration = Duration::from_millis(5);

/// Gives the ready jobs back whenever every permit is held by a handler that has run for
/// [`STALLED_AFTER`] while they wait (until the worker stops).
pub(super) async fn watch_stalls<S: Store + Clone>(config: Arc<Config<S>>, shared: Arc<Shared>) {
    loop {
        if lock(&shared.recorded).is_empty() {
            tokio::select! {
                _ = shared.background_stop.cancelled() => return,
                _ = shared.recorded_some.notified() => {}
            }
        }
        tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            _ = tokio::time::sleep(STALLED_AFTER / 2) => {}
        }
        let stalled = config.limiter.available() == 0
            && shared
                .youngest_running()
                .is_some_and(|d| d >= STALLED_AFTER);
        if stalled {
            // Everything held goes back, not only the ready jobs: what stays would start before
            // them, out of priority order (and nothing held starts soon anyway).
            let mut stalled: Vec<Job> = lock(&shared.recorded).drain(..).collect();
            if !stalled.is_empty() {
                stalled.extend(shared.prefetched.take_all());
                tracing::debug!(worker = %config.id, jobs = stalled.len(), "ready jobs given back: no permit freed");
                lock(&shared.stale).extend(stalled);
                start_buffered(&config, &shared);
            }
        }
    }
}

/// Whether a round has work: stale ready jobs to give back, or held jobs to record.
fn wants_round<S>(config: &Config<S>, shared: &Shared) -> bool {
    if shared.stop_claiming.is_cancelled() {
        return false;
    }
    !lock(&shared.stale).is_empty() || confirm_wanted(config, shared) > 0
}

/// How many held jobs to record now: the free permits' worth plus the confirm-ahead, less what
/// is ready. (Rounds follow each other while this is positive: each round trip records what
/// the permits will take during the next, so the start rate can grow to what the jobs allow.)
fn confirm_wanted<S>(config: &Config<S>, shared: &Shared) -> usize {
    if shared.prefetched.len() == 0 {
        return 0;
    }
    let free = config.limiter.available();
    // None ahead while a handler has run long: slower jobs than those the figure was made for.
    let ahead = match shared.youngest_running() {
        Some(d) if d >= STALLED_AFTER => 0,
        _ => shared.confirm_ahead.load(Ordering::Relaxed),
    };
    let ready = lock(&shared.recorded).len() + shared.recording.load(SeqCst);
    (free + ahead).saturating_sub(ready)
}

/// Starts ready jobs, oldest first, while permits are free.
fn run_ready<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>) {
    loop {
        if shared.stop_claiming.is_cancelled() {
            return;
        }
        let mut ready = lock(&shared.recorded);
        if ready.is_empty() {
            return;
        }
        let Ok(permit) = config.limiter.try_acquire_owned() else {
            return;
        };
        let job = ready.pop_front().expect("a front");
        drop(ready);
        start_job(config, shared, job, Some(permit));
    }
}

/// One round: gives back stale ready jobs, records the starts of the held jobs wanted, and
/// starts what can start. `false` when there was nothing to do or the store failed.
async fn round<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>) -> bool {
    run_ready(config, shared);
    let stale = std::mem::take(&mut *lock(&shared.stale));
    let mut worked = false;
    if !stale.is_empty() {
        // A failure is counted; their leases run out and they are rescued.
        let _ = release(config, shared, stale).await;
        worked = true;
    }
    let wanted = confirm_wanted(config, shared);
    if shared.stop_claiming.is_cancelled() || wanted == 0 {
        return worked;
    }
    let batch = shared.prefetched.take_best(wanted);
    if batch.is_empty() {
        return worked;
    }
    shared.recording.fetch_add(batch.len(), SeqCst);
    let recording = batch.len();
    let leases: Vec<Lease> = batch
        .iter()
        .map(|job| job.lease().expect("a claimed job is leased"))
        .collect();
    let began = Instant::now();
    let statuses = config.store.start_held(&leases).await;
    shared.recording.fetch_sub(recording, SeqCst);
    let statuses = match statuses {
        Ok(statuses) => statuses,
        Err(e) => {
            tracing::warn!(worker = %config.id, error = %e, "held jobs not started");
            shared.emit(WorkerEvent::StoreError {
                error: format!("start held jobs: {e}"),
            });
            shared.prefetched.push(batch);
            return false;
        }
    };
    shared.start_round_trip.record(began.elapsed());
    let now = Utc::now();
    {
        let mut ready = lock(&shared.recorded);
        for (mut job, status) in batch.into_iter().zip(statuses) {
            match status {
                HeldStatus::Done => {
                    job.started_at = Some(now);
                    ready.push_back(job);
                    shared.recorded_some.notify_one();
                }
                HeldStatus::Cancelled => cancelled(shared, &job),
                HeldStatus::Lost => lost(config, shared, &job),
            }
        }
    }
    if shared.stop_claiming.is_cancelled() {
        // Shutdown began while the batch was out: what it recorded goes back with the rest.
        return_buffered(config, shared).await;
        return false;
    }
    run_ready(config, shared);
    true
}

/// Gives back the `n` worst held jobs if the oldest has waited longer than `older`: they
/// would not start soon, and another worker may start them sooner.
pub(super) async fn give_back_excess<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    n: usize,
    older: Duration,
) -> Result<(), StoreError> {
    let jobs = shared.prefetched.take_worst_if_older(n, older);
    if jobs.is_empty() {
        return Ok(());
    }
    let given = release(config, shared, jobs).await?;
    tracing::debug!(worker = %config.id, given, "held jobs given back: they would not start soon");
    Ok(())
}

/// Gives every held and ready job back (shutdown).
pub(super) async fn return_buffered<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
) {
    let mut jobs = shared.prefetched.take_all();
    jobs.extend(lock(&shared.recorded).drain(..));
    jobs.append(&mut lock(&shared.stale));
    if jobs.is_empty() {
        return;
    }
    match release(config, shared, jobs).await {
        Ok(returned) => {
            shared.returned.fetch_add(returned, Ordering::Relaxed);
            tracing::info!(worker = %config.id, returned, "jobs claimed ahead put back");
        }
        // Their leases run out and they are rescued, their attempt unspent.
        Err(e) => {
            tracing::warn!(worker = %config.id, error = %e, "jobs claimed ahead not put back")
        }
    }
}

/// `Store::release_held` for `jobs`, each reported; how many went back.
async fn release<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    jobs: Vec<Job>,
) -> Result<usize, StoreError> {
    let leases: Vec<Lease> = jobs
        .iter()
        .map(|job| job.lease().expect("a claimed job is leased"))
        .collect();
    shared.counters.gave_back(leases.len());
    let statuses = match config.store.release_held(&leases).await {
        Ok(s) => s,
        Err(e) => {
            shared.emit(WorkerEvent::StoreError {
                error: format!("give back held jobs: {e}"),
            });
            return Err(e);
        }
    };
    let mut given = 0;
    for (job, status) in jobs.iter().zip(statuses) {
        match status {
            HeldStatus::Done => {
                given += 1;
                finish_store(shared, job, Ok(JobState::Pending), || {
                    WorkerEvent::Snoozed {
                        id: job.id,
                        kind: job.kind.clone(),
                        until: job.run_at,
                    }
                });
            }
            HeldStatus::Cancelled => cancelled(shared, job),
            HeldStatus::Lost => lost(config, shared, job),
        }
    }
    Ok(given)
}

/// A held job cancelled in the store: it never started; counted as cancelled.
fn cancelled(shared: &Shared, job: &Job) {
    finish_store(shared, job, Ok(JobState::Cancelled), || {
        WorkerEvent::Cancelled {
            id: job.id,
            kind: job.kind.clone(),
        }
    });
}

/// A held job no longer held under its lease (rescued after the lease ran out): left alone.
fn lost<S>(config: &Config<S>, shared: &Shared, job: &Job) {
    tracing::warn!(worker = %config.id, job = %job.id, "lease of a job claimed ahead lost");
    finish_store(
        shared,
        job,
        Err(StoreError::LeaseLost { id: job.id }),
        || WorkerEvent::LeaseLost {
            id: job.id,
            kind: job.kind.clone(),
        },
    );
}
