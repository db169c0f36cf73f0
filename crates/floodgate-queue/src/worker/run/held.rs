//! Held jobs (claimed ahead, see [`prefetch`](super::prefetch)) leaving the buffer: started in
//! batches as permits free, given back when they would not start soon, and given back at
//! shutdown.
//!
//! # Implementation
//!
//! A held job starts only through `Store::start_held`, which records its start if it is still
//! held: a cancel that returned before that statement ended the job in the store, and the
//! statement says so. One batch is out at a time: it takes one permit per job, best job
//! first, while permits are free; a request that comes while a batch is out (a job finishing,
//! a claim landing) marks one more round, so jobs that finish during a round trip are started
//! together by the next one. A batch that cannot be written puts its jobs back in the buffer
//! and releases their permits; the claim loop asks again on its next round.

use std::sync::atomic::Ordering::SeqCst;

use super::claiming::start_job;
use super::executing::finish_store;
use super::*;
use crate::store::HeldStatus;

/// Starts held jobs, best first, while permits are free (see the module doc).
pub(super) fn start_buffered<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>) {
    // (An empty buffer, the usual case when jobs come one at a time: nothing to do.)
    if shared.prefetched.len() == 0 || shared.stop_claiming.is_cancelled() {
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
            if !start_batch(&config, &shared).await {
                shared.starting.store(false, SeqCst);
                // A request that came after this round took its jobs gets its round.
                if shared.start_again.load(SeqCst) && !shared.starting.swap(true, SeqCst) {
                    continue;
                }
                return;
            }
        }
    });
}

/// One batch: takes the free permits' worth of the best held jobs and starts those still
/// held. `false` when there was nothing to take or the store failed.
async fn start_batch<S: Store + Clone>(config: &Arc<Config<S>>, shared: &Arc<Shared>) -> bool {
    if shared.stop_claiming.is_cancelled() {
        return false;
    }
    let batch = shared
        .prefetched
        .take_best(config.claim_batch as usize, || {
            config.limiter.try_acquire_owned().ok()
        });
    if batch.is_empty() {
        return false;
    }
    let leases: Vec<Lease> = batch
        .iter()
        .map(|(job, _)| job.lease().expect("a claimed job is leased"))
        .collect();
    let statuses = match config.store.start_held(&leases).await {
        Ok(statuses) => statuses,
        Err(e) => {
            tracing::warn!(worker = %config.id, error = %e, "held jobs not started");
            shared.emit(WorkerEvent::StoreError {
                error: format!("start held jobs: {e}"),
            });
            shared
                .prefetched
                .push(batch.into_iter().map(|(job, _permit)| job));
            return false;
        }
    };
    let now = Utc::now();
    for ((mut job, permit), status) in batch.into_iter().zip(statuses) {
        match status {
            HeldStatus::Done => {
                job.started_at = Some(now);
                start_job(config, shared, job, Some(permit));
            }
            HeldStatus::Cancelled => cancelled(shared, &job),
            HeldStatus::Lost => lost(config, shared, &job),
        }
    }
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

/// Gives every held job back (shutdown).
pub(super) async fn return_buffered<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
) {
    let jobs = shared.prefetched.take_all();
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
