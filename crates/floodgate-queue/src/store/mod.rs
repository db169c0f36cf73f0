//! The [`Store`] trait: every operation of the job queue, implemented by each backend.
//!
//! Backends: [`SqliteStore`](crate::SqliteStore) (feature `sqlite`, the default) and
//! [`PgStore`](crate::PgStore) (feature `postgres`). One conformance suite
//! (`tests/conformance/`) runs against both.
//!
//! # How a claim stays fast
//!
//! A job queue table churns: every job is inserted, updated two or three times and finally
//! deleted. What makes database queues slow down in production is a claim that has to step
//! over rows it cannot take — finished jobs piling up behind the claim index, or dead row
//! versions nobody can vacuum because a long transaction elsewhere pins the MVCC horizon.
//! The schema is built so that a claim only ever reads runnable rows:
//!
//! * The claim index is *partial*: `(queue, priority DESC, run_at, id) WHERE state IN
//!   ('pending', 'failed')`. Finished and running jobs are not in it at all, however many
//!   there are, and the claim query spells the states as literals so the planner can match
//!   the index predicate. The claim for one queue is an ordered index scan that stops after
//!   `limit` rows: its cost does not depend on how many finished jobs the table holds.
//! * Finished jobs leave the claim index the moment they finish and the table itself when
//!   [`delete_finished`](Store::delete_finished) runs (in bounded batches, each its own short
//!   statement, so retention never holds a long transaction).
//! * On PostgreSQL a claimed row's old version stays in the partial index until vacuum, and
//!   while a long transaction anywhere in the database pins the MVCC horizon, vacuum removes
//!   nothing: a claim that always starts at the front of the index steps over every job
//!   claimed since the pin began. So successive claims of a queue continue from where the last
//!   one ended (a cursor, re-read from the start at least once a second; priorities stay
//!   strict) — see `PgStoreBuilder::claim_rescan`. `BENCHMARKS.md` has the measurements: 0.87x
//!   of the unpinned rate during a 30-second pin, against 0.29x without the cursor.
//! * Batch completions and heartbeats match rows by id and lease token only (a CHECK keeps a
//!   token exactly while a job runs), so they are primary-key lookups whatever else is running.
//!
//! The plans, with 500,000 succeeded and 1,000 pending jobs in one queue (PostgreSQL 15,
//! `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)` of the claim's inner `SELECT`, generic plan;
//! 100 rows read for `LIMIT 100`, 0.08 ms):
//!
//! ```text
//! Limit (actual rows=100 loops=1)
//!   ->  LockRows (actual rows=100 loops=1)
//!         ->  Nested Loop Anti Join (actual rows=100 loops=1)
//!               Join Filter: (q.name = j.queue)
//!               ->  Index Scan using floodgate_jobs_runnable on floodgate_jobs j (actual rows=100 loops=1)
//!                     Index Cond: ((queue = $1) AND (run_at <= now()))
//!                     Filter: ((state = ANY ('{pending,failed}'::text[])) AND (($2 IS NULL) OR (kind = ANY ($2)))
//!                              AND ((ordering_key IS NULL) OR (NOT (SubPlan 1))))
//!                     SubPlan 1
//!                       ->  Index Scan using floodgate_jobs_ordering on floodgate_jobs o (never executed)
//!               ->  Materialize (actual rows=0 loops=100)
//!                     ->  Index Scan using floodgate_queues_pkey on floodgate_queues q (actual rows=0 loops=1)
//! ```
//!
//! and SQLite 3.40 (`EXPLAIN QUERY PLAN`; no sort step: the index gives the order):
//!
//! ```text
//! SEARCH j USING INDEX floodgate_jobs_runnable (queue=?)
//! CORRELATED SCALAR SUBQUERY 2
//!   SEARCH o USING INDEX floodgate_jobs_ordering (queue=? AND ordering_key=? AND <expr><?)
//! CORRELATED SCALAR SUBQUERY 3
//!   SEARCH q USING INDEX sqlite_autoindex_floodgate_queues_1 (name=?)
//! ```

mod params;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(crate) use params::QueueStatsBuilder;
pub use params::{
    Claim, Completion, DEFAULT_LEASE_TTL, FailureGroup, HeldStatus, JobPage, LeaseStatus, ListJobs,
    MAX_SKIP_GROUPS, PausedGroup, QueueActivity, QueueStats, Rescued, Retention, RetryAt,
    StateCounts,
};

use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, NewJob};
use crate::store::wakeup::Wakeups;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod any;
mod batch;
mod fence;
mod migrate;
mod rows;
pub(crate) mod shared;
mod statements;
pub mod wakeup;

pub use crate::json::{DEFAULT_MAX_PAYLOAD_BYTES, MAX_JSON_DEPTH};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use any::{AnyStore, Backend};

/// A job store: the durable queue's storage and its client API.
///
/// Methods are async and cancel-safe in the database's sense: each is one statement or one
/// transaction, so a dropped future either happened or did not.
///
/// Writing jobs inside the caller's own transaction (the outbox) is [`OutboxStore`], which
/// each backend implements too; [`AnyStore`] (a backend chosen at run time) has only this
/// trait, since a transaction belongs to one backend.
pub trait Store: Send + Sync + 'static {
    /// Enqueues one job in its own transaction.
    fn enqueue(&self, job: NewJob) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;

    /// Enqueues many jobs in one transaction (a few statements however many jobs), returning
    /// one [`Enqueued`] per job in input order.
    fn enqueue_many(
        &self,
        jobs: Vec<NewJob>,
    ) -> impl Future<Output = Result<Vec<Enqueued>, StoreError>> + Send;

    /// Claims up to `claim.limit` runnable jobs (pending or failed, `run_at` passed, queue not
    /// paused, first of their ordering key), highest priority first, then oldest `run_at`,
    /// then lowest id, in one statement. Each becomes `running` with a new lease token, one
    /// more attempt and a lease until now + `lease_ttl`. Returned in that order.
    fn claim(&self, claim: &Claim) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Starts held jobs (claimed with [`Claim::hold`]): records the start (`started_at`) of
    /// each job its lease still holds, in one statement. From then on the job is `running` to
    /// every reader and a cancel only asks it to stop. One status per lease, in input order: a
    /// job cancelled while held is [`HeldStatus::Cancelled`] and must not run.
    fn start_held(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = Result<Vec<HeldStatus>, StoreError>> + Send;

    /// Gives back jobs the caller holds and did not run (claimed with [`Claim::hold`], started
    /// or not): `pending` again in their place (`run_at` unchanged), their attempt not spent,
    /// in one statement; idle workers are woken. A job whose cancel was asked for after its
    /// start ends `cancelled` ([`HeldStatus::Cancelled`]). One status per lease, in input
    /// order.
    fn release_held(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = Result<Vec<HeldStatus>, StoreError>> + Send;

    /// Heartbeat: extends the leases `worker_id` still holds to now + `ttl`, in one statement.
    /// One status per lease, in input order.
    fn extend_leases(
        &self,
        worker_id: &str,
        leases: &[Lease],
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<LeaseStatus>, StoreError>> + Send;

    /// Marks a running job `succeeded` with its result, if `lease` still holds it; otherwise
    /// [`StoreError::LeaseLost`] and nothing changes.
    fn complete(
        &self,
        lease: Lease,
        result: Option<Value>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`complete`](Store::complete) for many jobs in one statement. Returns the ids whose
    /// lease was lost (those are left unchanged).
    fn complete_many(
        &self,
        completions: Vec<Completion>,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;

    /// Records a failed attempt, if `lease` still holds the job. It goes `failed` to run again
    /// at `retry_at`, or `dead` when its attempts are used up, or `cancelled` when
    /// cancellation was asked for. Returns the new state.
    fn fail(
        &self,
        lease: Lease,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<JobState, StoreError>> + Send;

    /// Sends a running job straight to `dead` (a permanent failure), if `lease` still holds it.
    fn dead(
        &self,
        lease: Lease,
        error: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts a running job back to `pending` until `until` without spending an attempt, if
    /// `lease` still holds it.
    fn snooze(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `attempt` (a JSON object describing one try: a status, a duration, an error) to
    /// the job's `metadata.attempts`, if `lease` still holds the job; otherwise
    /// [`StoreError::LeaseLost`]. The list grows by one per call (so at most `max_attempts`
    /// entries when called once per attempt).
    fn record_attempt(
        &self,
        lease: Lease,
        attempt: Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes back up to `limit` running jobs whose lease ran out: to `pending` (or `dead` when
    /// their attempts are used up, `cancelled` when cancellation was asked for), recording the
    /// takeover in their metadata (`rescues`, `last_rescue`).
    fn rescue_expired(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Rescued>, StoreError>> + Send;

    /// Requeues a `dead` or `cancelled` job to run now with a fresh set of attempts.
    fn retry_dead(&self, id: JobId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Requeues every dead job of a queue (of one kind, if given); returns how many.
    fn retry_dead_all(
        &self,
        queue: &str,
        kind: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Cancels a job: `pending` and `failed` jobs become `cancelled`; a `running` job is
    /// marked so its worker learns at its next heartbeat (and its next `fail` cancels it).
    /// Returns the state after the call (`cancelled`, or `running` when only marked).
    fn cancel(&self, id: JobId) -> impl Future<Output = Result<JobState, StoreError>> + Send;

    /// Claims skip this queue until [`resume`](Store::resume).
    fn pause(&self, queue: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims take from this queue again.
    fn resume(&self, queue: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts per queue and state, pause flags and the oldest runnable job's age.
    fn queue_stats(&self) -> impl Future<Output = Result<Vec<QueueStats>, StoreError>> + Send;

    /// Wake-ups when jobs are enqueued (LISTEN/NOTIFY on Postgres, in-process on SQLite),
    /// with a polling tick as the fallback.
    fn listen(&self) -> impl Future<Output = Result<Wakeups, StoreError>> + Send;

    /// Deletes finished jobs older than the retention allows, `batch_size` rows a statement.
    /// Returns how many went.
    fn delete_finished(
        &self,
        retention: Retention,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// One job by id, for status polling.
    fn job(&self, id: JobId) -> impl Future<Output = Result<Option<Job>, StoreError>> + Send;

    /// Jobs matching the filters, newest first, one page at a time.
    fn list(&self, list: &ListJobs) -> impl Future<Output = Result<JobPage, StoreError>> + Send;

    /// Forgets inbox keys recorded longer ago than `age`, `batch_size` rows a statement;
    /// returns how many went. (A message redelivered after that is processed again.)
    fn inbox_delete_older_than(
        &self,
        age: std::time::Duration,
        batch_size: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes the role `name` for `holder` until now + `ttl` if it is free, expired, or already
    /// `holder`'s (then it is renewed): `true` when `holder` has it. The building block of
    /// [`Singleton::lease`](crate::Singleton::lease).
    fn leader_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the role `name` up if `holder` has it.
    fn leader_release(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`queue_stats`](Store::queue_stats) for a sampler that counts often, reading the
    /// unfinished jobs and the recently finished ones, not the history kept: the unfinished
    /// counts (pending, running, failed) and the oldest runnable age exact; the finished counts
    /// (succeeded, dead, cancelled) of jobs finished since `finished_since`, split into those
    /// finished more than `settle` ago (`queues`: add them to a running total) and the rest
    /// (`recent`: show them on top, count them again next time, as a finishing transaction
    /// may commit after its `finished_at`). Pass each call's `settled_until` as the next
    /// call's `finished_since`, and the epoch for a full count. A job committed more than
    /// `settle` after its `finished_at`, or a finished job retried or deleted, shows in the
    /// totals only at the next full count.
    fn queue_activity(
        &self,
        finished_since: chrono::DateTime<chrono::Utc>,
        settle: std::time::Duration,
    ) -> impl Future<Output = Result<QueueActivity, StoreError>> + Send;

    /// How many jobs match `list`'s filters (its page size is ignored; `before` counts only
    /// the jobs below that id).
    fn count(&self, list: &ListJobs) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The failed (waiting for a retry) and dead jobs grouped by queue, kind and last error,
    /// biggest group first, at most `limit` groups; only `queue` and `kind` if given.
    fn failure_groups(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FailureGroup>, StoreError>> + Send;

    /// How long the jobs that succeeded since `since` waited from due (`run_at`) to the start
    /// of their last attempt, newest first, at most `limit`: a sample for latency
    /// percentiles that reads only the newest rows of an index.
    fn recent_waits(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<std::time::Duration>, StoreError>> + Send;

    /// Pauses a group of jobs (see [`NewJob::group`]) with the reason shown to operators: the
    /// worker runtime (and the server's HTTP claims) leave the group's jobs pending, re-reading
    /// the paused groups once per poll interval, until [`resume_group`](Store::resume_group).
    /// A bare [`claim`](Store::claim) skips only the groups its [`Claim::skip_groups`] names.
    /// Pausing a paused group updates its reason. A claim steps over the skipped jobs that
    /// come first in its order (on PostgreSQL only at its periodic full claims; the cursor
    /// starts after them), so a large paused backlog costs claims of that queue some reads.
    fn pause_group(
        &self,
        group: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Resumes a paused group: `true` when it was paused.
    fn resume_group(&self, group: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every paused group, by name.
    fn paused_groups(&self) -> impl Future<Output = Result<Vec<PausedGroup>, StoreError>> + Send;
}

/// A [`Store`] that writes jobs inside the caller's own database transaction: the
/// transactional outbox (a business row and its job commit together or not at all) and the
/// inbox's exactly-once effects. Implemented by each backend, on its own sqlx database type.
pub trait OutboxStore: Store {
    /// The sqlx database the backend runs on (for [`enqueue_in`](OutboxStore::enqueue_in)).
    type Database: sqlx::Database;

    /// Starts a transaction on the store's own pool, for business writes and
    /// [`enqueue_in`](OutboxStore::enqueue_in) together. (Any transaction on the same database
    /// works; this one is on the connection the store writes with, which on SQLite avoids
    /// waiting on a second writer.)
    fn begin(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, StoreError>> + Send;

    /// Enqueues inside the caller's open transaction: the job exists if and only if that
    /// transaction commits (the transactional outbox).
    fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Self::Database>,
        job: NewJob,
    ) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;

    /// [`enqueue_many`](Store::enqueue_many) inside the caller's open transaction.
    fn enqueue_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Self::Database>,
        jobs: Vec<NewJob>,
    ) -> impl Future<Output = Result<Vec<Enqueued>, StoreError>> + Send;

    /// Records, inside the caller's transaction, that `consumer` processed `message_key`:
    /// `true` the first time, `false` for a duplicate (nothing written). A concurrent
    /// transaction recording the same key waits for this one and then sees a duplicate.
    /// The building block of [`Inbox`](crate::Inbox).
    fn inbox_record(
        &self,
        tx: &mut sqlx::Transaction<'_, Self::Database>,
        consumer: &str,
        message_key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
