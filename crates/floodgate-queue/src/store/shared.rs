//! The logic both backends run around their statements, written once: validation, what an
//! empty input skips, claim bookkeeping, the batched delete loop, paging, and the metrics
//! each operation records. A backend passes its statement in as a closure (called only once
//! the input is valid) and gets the operation's result back. Fenced updates are in `fence.rs`,
//! row reading in `rows.rs`.

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;
use crate::job::{Enqueued, Job, Lease, NewJob, validate_name};
use crate::observe::Observe;
use crate::store::rows::{self, Columns};
use crate::store::{Claim, HeldStatus, JobPage, LeaseStatus, ListJobs, Rescued, Retention, Store};

/// Validates a batch before any of it is written, so a bad job rejects the whole batch.
pub(crate) fn validate_all(jobs: &[NewJob], max_payload_bytes: usize) -> Result<(), StoreError> {
    if jobs.len() > 100_000 {
        return Err(StoreError::invalid(
            "jobs",
            format!("{} jobs in one batch; at most 100000", jobs.len()),
        ));
    }
    jobs.iter().try_for_each(|job| job.check(max_payload_bytes))
}

/// Validates one job: its fields, and its payload's size against the store's limit.
/// An enqueue: validates the batch, writes it with `insert` (not called for an empty batch)
/// and counts what was enqueued and what was a duplicate.
pub(crate) async fn enqueue(
    observe: &Observe,
    max_payload_bytes: usize,
    jobs: &[NewJob],
    insert: impl AsyncFnOnce() -> Result<Vec<Enqueued>, StoreError>,
) -> Result<Vec<Enqueued>, StoreError> {
    validate_all(jobs, max_payload_bytes)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let out = insert().await?;
    observe.enqueued(jobs, &out);
    Ok(out)
}

/// Claim order: highest priority, then oldest `run_at`, then lowest id (a claim's
/// `RETURNING` rows come back in no particular order).
pub(crate) fn sort_claimed(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| (b.priority, a.run_at, a.id).cmp(&(a.priority, b.run_at, b.id)));
}

/// A row a claim leased but could not read (a payload no reader can decode, say): it is sent
/// dead instead of failing the claim, so the rest of the batch runs.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) lease: Lease,
    pub(crate) error: StoreError,
}

/// Decodes claimed rows one by one: the jobs, and the rows that could not be read. Only a row
/// whose id or lease token cannot be read fails the whole claim (the table is not ours then).
pub(crate) fn decode_claimed<R: Columns>(
    rows: &[R],
    decode: impl Fn(&R) -> Result<Job, StoreError>,
) -> Result<(Vec<Job>, Vec<Unreadable>), StoreError> {
    let mut jobs = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in rows {
        match decode(row) {
            Ok(job) => jobs.push(job),
            Err(error) => unreadable.push(Unreadable {
                lease: rows::lease_of_row(row)?,
                error,
            }),
        }
    }
    sort_claimed(&mut jobs);
    Ok((jobs, unreadable))
}

/// How many jobs a claim capped at `max` running jobs of its kind may take while `running`
/// run: the room left, at most `limit`.
pub(crate) fn room(max: u32, running: i64, limit: u32) -> i64 {
    (i64::from(max) - running).clamp(0, i64::from(limit))
}

/// A claim: validated, then `run` runs the backend's statements, putting the rows it leased
/// but could not read in the vector it is given. Those are sent dead once its transaction
/// ended (burying takes the rows' locks), and every row it leased is counted.
pub(crate) async fn claim<S: Store>(
    store: &S,
    observe: &Observe,
    claim: &Claim,
    run: impl AsyncFnOnce(&mut Vec<Unreadable>) -> Result<Vec<Job>, StoreError>,
) -> Result<Vec<Job>, StoreError> {
    claim.validate()?;
    let mut unreadable = Vec::new();
    let jobs = run(&mut unreadable).await;
    let leased = unreadable.len();
    bury_unreadable(store, unreadable).await;
    let jobs = jobs?;
    observe.claimed(jobs.len() + leased);
    Ok(jobs)
}

/// Sends claimed rows that could not be read to `dead`, with the reason as their last error.
/// A failure here is logged: the lease then expires and the rescuer tries again.
async fn bury_unreadable<S: Store>(store: &S, unreadable: Vec<Unreadable>) {
    for Unreadable { lease, error } in unreadable {
        let message = format!(
            "job {} could not be read when it was claimed ({error}); it was dead-lettered \
             without running: fix or delete the row, then retry it",
            lease.id
        );
        tracing::error!(job = %lease.id, %error, "claimed job cannot be read; sent dead");
        if let Err(e) = store.dead(lease, &message).await {
            tracing::warn!(job = %lease.id, error = %e, "could not dead-letter an unreadable job");
        }
    }
}

/// A heartbeat: checks the TTL, runs nothing for no leases, and reads the rows `extend`
/// returns into one status per lease.
pub(crate) async fn extend_leases<R: Columns>(
    worker_id: &str,
    leases: &[Lease],
    ttl: Duration,
    extend: impl AsyncFnOnce() -> Result<Vec<R>, StoreError>,
) -> Result<Vec<LeaseStatus>, StoreError> {
    // The name a claim would take: one it would refuse holds no lease to extend.
    validate_name("worker_id", worker_id)?;
    crate::store::params::validate_ttl(ttl)?;
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    rows::lease_statuses(leases, &extend().await?)
}

/// A `start_held` or `release_held`: `change` runs the one statement and returns the (id,
/// queue, new state) of each job it changed (`cancelled`: a release that found a cancel
/// asked for); for the rest, `states` reads their states (cancelled while held, or no longer
/// held). One status per lease, in input order, and the queues of the jobs changed.
pub(crate) async fn held(
    leases: &[Lease],
    change: impl AsyncFnOnce() -> Result<Vec<(i64, String, String)>, StoreError>,
    states: impl AsyncFnOnce(Vec<i64>) -> Result<Vec<(i64, String)>, StoreError>,
) -> Result<(Vec<HeldStatus>, Vec<String>), StoreError> {
    if leases.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let changed = change().await?;
    let done: std::collections::HashSet<i64> = changed
        .iter()
        .filter(|(_, _, state)| state != "cancelled")
        .map(|(id, ..)| *id)
        .collect();
    let mut cancelled: std::collections::HashSet<i64> = changed
        .iter()
        .filter(|(_, _, state)| state == "cancelled")
        .map(|(id, ..)| *id)
        .collect();
    let mut queues: Vec<String> = changed.into_iter().map(|(_, q, _)| q).collect();
    queues.sort_unstable();
    queues.dedup();
    let missing: Vec<i64> = leases
        .iter()
        .map(|l| l.id.0)
        .filter(|id| !done.contains(id) && !cancelled.contains(id))
        .collect();
    if !missing.is_empty() {
        cancelled.extend(
            states(missing)
                .await?
                .into_iter()
                .filter(|(_, state)| state == "cancelled")
                .map(|(id, _)| id),
        );
    }
    let statuses = leases
        .iter()
        .map(|l| {
            if done.contains(&l.id.0) {
                HeldStatus::Done
            } else if cancelled.contains(&l.id.0) {
                HeldStatus::Cancelled
            } else {
                HeldStatus::Lost
            }
        })
        .collect();
    Ok((statuses, queues))
}

/// A rescue: the jobs the statement took back, counted and logged.
pub(crate) async fn rescue<R: Columns>(
    observe: &Observe,
    rescue: impl Future<Output = Result<Vec<R>, sqlx::Error>>,
) -> Result<Vec<Rescued>, StoreError> {
    let rescued = rows::rescued(&rescue.await?)?;
    observe.rescued(&rescued);
    Ok(rescued)
}

/// The queues of the rescued jobs that are pending again, each once, in order.
pub(crate) fn queues_to_wake(rescued: &[Rescued]) -> Vec<&str> {
    let mut queues: Vec<&str> = rescued
        .iter()
        .filter(|r| r.state == crate::job::JobState::Pending)
        .map(|r| r.queue.as_str())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// Pausing or resuming `queue`: the name is checked before `update` runs, the change logged.
pub(crate) async fn set_paused<T>(
    observe: &Observe,
    queue: &str,
    paused: bool,
    update: impl AsyncFnOnce() -> Result<T, sqlx::Error>,
) -> Result<(), StoreError> {
    validate_name("queue", queue)?;
    update().await?;
    observe.paused(queue, paused);
    Ok(())
}

/// Runs `batch` (one bounded delete statement, returning how many rows went) until a batch
/// deletes fewer than `size` rows; returns how many went in all. Each batch is its own short
/// statement, so a large delete never holds a long transaction.
async fn delete_in_batches<Fut>(
    size: u64,
    mut batch: impl FnMut() -> Fut,
) -> Result<u64, StoreError>
where
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let deleted = batch().await?;
        total += deleted;
        if deleted < size {
            return Ok(total);
        }
    }
}

/// `delete_finished`: the retention is checked, then `batch` deletes up to
/// `retention.batch_size` rows a statement.
pub(crate) async fn delete_finished<Fut>(
    retention: &Retention,
    batch: impl FnMut() -> Fut,
) -> Result<u64, StoreError>
where
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    retention.validate()?;
    delete_in_batches(u64::from(retention.batch_size), batch).await
}

/// `inbox_delete_older_than`: `batch` gets the batch size (at least 1) to bind.
pub(crate) async fn inbox_delete<Fut>(
    batch_size: u32,
    mut batch: impl FnMut(i64) -> Fut,
) -> Result<u64, StoreError>
where
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let size = batch_size.max(1);
    delete_in_batches(u64::from(size), || batch(i64::from(size))).await
}

/// One page of `list`: `fetch` gets the number of rows to read (one more than the page, to
/// learn whether another page follows).
pub(crate) async fn list<R>(
    list: &ListJobs,
    decode: impl Fn(&R) -> Result<Job, StoreError>,
    fetch: impl AsyncFnOnce(i64) -> Result<Vec<R>, sqlx::Error>,
) -> Result<JobPage, StoreError> {
    let size = list.page_size()?;
    let jobs = fetch(size + 1)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JobPage::from_overfetch(jobs, size))
}

/// `inbox_record`: the names are checked before `insert` runs; `true` when it wrote the key.
pub(crate) async fn inbox_record(
    consumer: &str,
    message_key: &str,
    insert: impl AsyncFnOnce() -> Result<u64, sqlx::Error>,
) -> Result<bool, StoreError> {
    validate_name("consumer", consumer)?;
    validate_name("message_key", message_key)?;
    Ok(insert().await? == 1)
}

/// `leader_acquire`: the names are checked before `acquire` runs; `true` when the holder it
/// returns is `holder`.
pub(crate) async fn leader_acquire(
    name: &str,
    holder: &str,
    acquire: impl AsyncFnOnce() -> Result<Option<String>, sqlx::Error>,
) -> Result<bool, StoreError> {
    validate_name("name", name)?;
    validate_name("holder", holder)?;
    Ok(acquire().await?.as_deref() == Some(holder))
}

/// Microseconds in a duration, capped at 100 years (for lease and retention arithmetic in
/// SQL, where larger intervals overflow).
pub(crate) fn micros(d: std::time::Duration) -> i64 {
    const CAP: u128 = 100 * 366 * 24 * 3600 * 1_000_000;
    d.as_micros().min(CAP) as i64
}
