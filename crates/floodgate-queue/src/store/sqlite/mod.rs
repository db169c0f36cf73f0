//! The embedded SQLite backend: one file, no server.
//!
//! * WAL journal, `synchronous = NORMAL` (a process crash loses nothing; a power cut may roll
//!   back the last transactions, business rows and their jobs together, so the outbox
//!   guarantee holds either way — [`SqliteStoreBuilder::synchronous_full`] trades speed for
//!   surviving power cuts too), a busy timeout for other processes on the same file.
//! * One writer connection by default ([`SqliteStoreBuilder::writers`]): SQLite runs one
//!   writer at a time anyway. Four writer connections measured the same (`BENCHMARKS.md`);
//!   one keeps waiting writers in the pool's fair queue rather than in SQLite's sleeping busy
//!   handler. Reads (`job`, `list`, `queue_stats`) use a pool of read-only connections that
//!   WAL lets run beside the writer.
//! * A claim is one `UPDATE … RETURNING` statement. A write statement takes the write lock
//!   before it reads (as `BEGIN IMMEDIATE` does), so it never fails on a stale snapshot when
//!   another process wrote first; it waits that process out with the busy timeout.
//! * Wake-ups: enqueues through this store notify its listeners at once; commits by other
//!   processes on the same file are noticed within [`SqliteStoreBuilder::cross_process_poll`]
//!   (5 ms) through `PRAGMA data_version`.

mod open;
mod sql;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokio::sync::broadcast;

use self::sql::Sql;
use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, LeaseToken, NewJob};
use crate::observe::Observe;
use crate::store::batch::{Written, idempotency_invisible};
use crate::store::migrate::{self, Names};
use crate::store::{
    Claim, Completion, JobPage, LeaseStatus, ListJobs, OutboxStore, QueueStats, QueueStatsBuilder,
    Rescued, Retention, Store, bury_unreadable, cancel_missed, decode_claimed, micros,
    validate_all,
};
use crate::wakeup::Wakeups;

/// The job store on an embedded SQLite database.
///
/// Cheap to clone; clones share the connections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), floodgate_queue::StoreError> {
/// use floodgate_queue::{Claim, NewJob, SqliteStore, Store};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("jobs.db")).await?;
/// let enqueued = store.enqueue(NewJob::new("send_email", json!({"to": "ada"}))).await?;
/// let jobs = store.claim(&Claim::new("worker-1", 10)).await?;
/// assert_eq!(jobs[0].id, enqueued.id);
/// store.complete(jobs[0].lease().unwrap(), None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: SqlitePool,
    reader: SqlitePool,
    sql: Sql,
    notify: broadcast::Sender<Arc<str>>,
    /// How often listeners check for other processes' commits (files only).
    external_writes: Option<Duration>,
    /// Read connections for listeners, one each, held for the listener's life.
    listeners: SqlitePool,
    observe: Observe,
    max_payload_bytes: usize,
}

/// Settings for a [`SqliteStore`]; from [`SqliteStore::builder`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: Option<PathBuf>,
    table_prefix: String,
    writers: u32,
    readers: u32,
    busy_timeout: Duration,
    synchronous_full: bool,
    cross_process_poll: Duration,
    name: String,
    max_payload_bytes: usize,
}

impl SqliteStoreBuilder {
    /// Table names start with this (default `floodgate_`), so several apps can share a file.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Write connections (default 1, at least 1). SQLite runs one writer at a time whatever
    /// this says; more connections only contend for the file lock (see `BENCHMARKS.md`).
    pub fn writers(mut self, n: u32) -> Self {
        self.writers = n.max(1);
        self
    }

    /// Read-only connections for `job`, `list` and `queue_stats` (default 4, at least 1).
    pub fn readers(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// How long a statement waits for another process's write lock (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// `synchronous = FULL`: commits survive a power cut, at the cost of an fsync per commit
    /// (default `NORMAL`: they survive a process crash).
    pub fn synchronous_full(mut self, full: bool) -> Self {
        self.synchronous_full = full;
        self
    }

    /// How often a listener checks whether another process committed to the file (default
    /// 5 ms): one `PRAGMA data_version` on the listener's own read connection, which reads
    /// shared memory, not the disk. Wake-ups within the process need no check.
    pub fn cross_process_poll(mut self, every: Duration) -> Self {
        self.cross_process_poll = every.max(Duration::from_millis(1));
        self
    }

    /// The largest payload (as JSON text) `enqueue` accepts (default 1 MiB,
    /// [`DEFAULT_MAX_PAYLOAD_BYTES`](crate::DEFAULT_MAX_PAYLOAD_BYTES)); larger ones fail with
    /// [`StoreError::PayloadTooLarge`] before anything is written.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The store's name in metrics (`store="…"`, default `default`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Opens (creating if missing) the database and runs the migrations.
    ///
    /// A path in a missing directory, a directory, a file that is not a SQLite database or
    /// one this user cannot write fails with [`StoreError::Open`], naming the file and what to
    /// do.
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        migrate::validate_identifier("table_prefix", &self.table_prefix, 40)?;
        match self.path.clone() {
            Some(path) => {
                open::check_path(&path)?;
                self.open_checked()
                    .await
                    .map_err(|e| open::open_error(&path, e))
            }
            None => self.open_checked().await,
        }
    }

    async fn open_checked(self) -> Result<SqliteStore, StoreError> {
        let base = match &self.path {
            Some(path) => SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if self.synchronous_full {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                }),
            None => SqliteConnectOptions::new().in_memory(true),
        }
        .busy_timeout(self.busy_timeout)
        .foreign_keys(true);
        // In-process connections do not drop: no ping before each use (sqlx's default pings,
        // a round trip to the connection's thread per operation).
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(if self.path.is_some() { self.writers } else { 1 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(base.clone())
            .await?;
        let reader = match &self.path {
            Some(_) => SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(self.readers)
                .acquire_timeout(Duration::from_secs(60))
                .connect_lazy_with(base.clone().read_only(true)),
            // An in-memory database lives in its one connection.
            None => writer.clone(),
        };
        let names = Names {
            table: self.table_prefix.clone(),
            bare: self.table_prefix.clone(),
            channel: String::new(),
        };
        migrate_sqlite(&writer, &names).await?;
        let (notify, _) = broadcast::channel(256);
        let listeners = match &self.path {
            Some(_) => SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(64)
                .idle_timeout(None)
                .connect_lazy_with(base.clone().read_only(true)),
            None => reader.clone(),
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                reader,
                sql: Sql::new(&names),
                notify,
                external_writes: self.path.as_ref().map(|_| self.cross_process_poll),
                listeners,
                observe: Observe::new(&self.name),
                max_payload_bytes: self.max_payload_bytes,
            }),
        })
    }
}

impl SqliteStore {
    /// Settings for a store in the file at `path` (created if missing).
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: Some(path.as_ref().to_owned()),
            table_prefix: "floodgate_".to_owned(),
            writers: 1,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous_full: false,
            cross_process_poll: Duration::from_millis(5),
            name: "default".to_owned(),
            max_payload_bytes: crate::store::DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// Opens the store in the file at `path` with default settings.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStore::builder(path).open().await
    }

    /// A store in memory, gone when the last clone is dropped (for tests and examples).
    pub async fn in_memory() -> Result<Self, StoreError> {
        SqliteStoreBuilder {
            path: None,
            ..SqliteStore::builder("")
        }
        .open()
        .await
    }

    /// The pool the store writes with (one connection): use it for business tables that go
    /// in the same transactions as jobs.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// Closes the connections (waiting for those in use to come back).
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.reader.close().await;
    }

    fn notify<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        let mut last: Option<&str> = None;
        for queue in queues {
            if last != Some(queue) {
                let _ = self.inner.notify.send(queue.into());
                last = Some(queue);
            }
        }
    }

    /// Inserts a batch with one statement (plus one look-up of taken idempotency keys).
    async fn insert_all(
        &self,
        conn: &mut SqliteConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>, StoreError> {
        let sql = &self.inner.sql;
        let batch = jobs
            .iter()
            .map(|job| {
                Ok(serde_json::json!({
                    "q": job.queue,
                    "k": job.kind,
                    "p": serde_json::to_string(&job.payload)?,
                    "pr": job.priority,
                    "r": job.run_at.map(|t| t.timestamp_micros()),
                    "m": job.max_attempts,
                    "i": job.idempotency_key,
                    "o": job.ordering_key,
                    "md": serde_json::to_string(&job.metadata)?,
                }))
            })
            .collect::<Result<Vec<Value>, StoreError>>()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.insert.as_str()))
            .bind(serde_json::to_string(&batch)?)
            .bind(now_micros())
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("queue")?,
                    r.try_get("idempotency_key")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let written = Written::match_rows(jobs, rows)?;
        let mut existing = HashMap::new();
        if !written.missing().is_empty() {
            let wanted = serde_json::to_string(written.missing())?;
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.ids_by_key.as_str()))
                .bind(wanted)
                .fetch_all(&mut *conn)
                .await?
            {
                existing.insert(
                    (row.try_get("queue")?, row.try_get("idempotency_key")?),
                    JobId(row.try_get("id")?),
                );
            }
        }
        written
            .finish(jobs, &existing)
            .ok_or_else(|| idempotency_invisible(&jobs[0].queue))
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.inner.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Runs one fenced update; `LeaseLost` when it matched no row.
    async fn fenced<T>(
        &self,
        lease: Lease,
        operation: &'static str,
        query: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
        read: impl FnOnce(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match query.fetch_optional(&self.inner.writer).await? {
            Some(row) => read(&row),
            None => {
                self.inner.observe.lease_lost(lease.id, operation);
                Err(StoreError::LeaseLost { id: lease.id })
            }
        }
    }

    /// Why an unconditional-looking update matched nothing: no such job, or the wrong state.
    async fn explain_miss(
        &self,
        id: JobId,
        operation: &'static str,
        expected: &'static str,
    ) -> StoreError {
        let state = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.state_of.as_str()))
            .bind(id.0)
            .fetch_optional(&self.inner.writer)
            .await;
        StoreError::missed(id, state, operation, expected)
    }
}

impl Store for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_many(vec![job]).await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        validate_all(&jobs, self.inner.max_payload_bytes)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.inner.writer.acquire().await?;
        let out = self.insert_all(&mut conn, &jobs).await?;
        drop(conn);
        self.inner.observe.enqueued(&jobs, &out);
        self.notify(jobs.iter().map(|j| j.queue.as_str()));
        Ok(out)
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Job>, StoreError> {
        claim.validate()?;
        let sql = &self.inner.sql;
        let now = now_micros();
        let (text, queues) = match claim.queues.as_slice() {
            [one] => (sql.claim_one_queue.as_str(), one.clone()),
            many => (
                sql.claim_queues.as_str(),
                serde_json::to_string(many).expect("strings serialise"),
            ),
        };
        let kinds = (!claim.kinds.is_empty())
            .then(|| serde_json::to_string(&claim.kinds).expect("strings serialise"));
        let query = sqlx::query(sqlx::AssertSqlSafe(text))
            .bind(&claim.worker_id)
            .bind(now.saturating_add(micros(claim.lease_ttl)))
            .bind(now)
            .bind(queues)
            .bind(kinds);
        let rows = match claim.cluster_limit {
            // One write statement in autocommit takes the write lock before it reads, like
            // BEGIN IMMEDIATE, so it never fails on a stale snapshot; it waits out other
            // processes' writes with the busy timeout.
            None => {
                query
                    .bind(i64::from(claim.limit))
                    .fetch_all(&self.inner.writer)
                    .await?
            }
            // Count and claim under one write lock: no other process claims in between.
            Some(max) => {
                let mut tx = self.write_tx().await?;
                let running: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.running_of_kind.as_str()))
                        .bind(&claim.kinds[0])
                        .fetch_one(&mut *tx)
                        .await?;
                let room = (i64::from(max) - running).clamp(0, i64::from(claim.limit));
                let rows = if room == 0 {
                    Vec::new()
                } else {
                    query.bind(room).fetch_all(&mut *tx).await?
                };
                tx.commit().await?;
                rows
            }
        };
        let (jobs, unreadable) = decode_claimed(&rows, job_from_row, lease_of_row)?;
        self.inner.observe.claimed(rows.len());
        bury_unreadable(self, unreadable).await;
        Ok(jobs)
    }

    async fn extend_leases(
        &self,
        worker_id: &str,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        crate::store::params::validate_ttl(ttl)?;
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_micros();
        let until = now.saturating_add(micros(ttl));
        let wanted: Vec<(i64, i64)> = leases.iter().map(|l| (l.id.0, l.token.0)).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.extend.as_str()))
            .bind(serde_json::to_string(&wanted)?)
            .bind(worker_id)
            .bind(until)
            .bind(now)
            .fetch_all(&self.inner.writer)
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(
                (
                    row.try_get::<i64, _>("id")?,
                    row.try_get::<i64, _>("lease_token")?,
                ),
                row.try_get::<bool, _>("cancel_requested")?,
            );
        }
        Ok(leases
            .iter()
            .map(|l| match found.get(&(l.id.0, l.token.0)) {
                None => LeaseStatus::Lost,
                Some(true) => LeaseStatus::CancelRequested,
                Some(false) => LeaseStatus::Extended,
            })
            .collect())
    }

    async fn complete(&self, lease: Lease, result: Option<Value>) -> Result<(), StoreError> {
        if let Some(r) = &result {
            crate::store::json::validate("result", r)?;
        }
        let result = result.map(|r| serde_json::to_string(&r)).transpose()?;
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.complete.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(result)
            .bind(now_micros());
        self.fenced(lease, "complete", query, |_| Ok(())).await?;
        self.inner.observe.finished("succeeded", 1);
        Ok(())
    }

    async fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<JobId>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        crate::store::json::validate_results(&completions)?;
        let batch = completions
            .iter()
            .map(|c| {
                let result = c.result.as_ref().map(serde_json::to_string).transpose()?;
                Ok((c.lease.id.0, c.lease.token.0, result))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let done: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.complete_many.as_str()))
                .bind(serde_json::to_string(&batch)?)
                .bind(now_micros())
                .fetch_all(&self.inner.writer)
                .await?;
        let done: HashSet<i64> = done.into_iter().collect();
        let lost: Vec<JobId> = completions
            .iter()
            .map(|c| c.lease.id)
            .filter(|id| !done.contains(&id.0))
            .collect();
        for id in &lost {
            self.inner.observe.lease_lost(*id, "complete");
        }
        self.inner
            .observe
            .finished("succeeded", completions.len() - lost.len());
        Ok(lost)
    }

    async fn fail(
        &self,
        lease: Lease,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<JobState, StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.fail.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(error)
            .bind(retry_at.timestamp_micros())
            .bind(now_micros());
        let state = self
            .fenced(lease, "fail", query, |row| read_state(row, "state"))
            .await?;
        self.inner.observe.finished_state(state);
        Ok(state)
    }

    async fn dead(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.dead.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(error)
            .bind(now_micros());
        self.fenced(lease, "dead", query, |_| Ok(())).await?;
        self.inner.observe.finished("dead", 1);
        Ok(())
    }

    async fn snooze(&self, lease: Lease, until: DateTime<Utc>) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.snooze.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(until.timestamp_micros())
            .bind(now_micros());
        let state = self
            .fenced(lease, "snooze", query, |row| read_state(row, "state"))
            .await?;
        self.inner.observe.finished(
            if state == JobState::Cancelled {
                "cancelled"
            } else {
                "snoozed"
            },
            1,
        );
        Ok(())
    }

    async fn rescue_expired(&self, limit: u32) -> Result<Vec<Rescued>, StoreError> {
        let now = now_micros();
        let at = micros_to_time(now)?.to_rfc3339();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.rescue.as_str()))
            .bind(now)
            .bind(at)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.inner.writer)
            .await?;
        let rescued = rows
            .iter()
            .map(|row| {
                Ok(Rescued {
                    id: JobId(row.try_get("id")?),
                    previous_owner: row.try_get("lease_owner")?,
                    state: read_state(row, "state")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.inner.observe.rescued(&rescued);
        Ok(rescued)
    }

    async fn retry_dead(&self, id: JobId) -> Result<(), StoreError> {
        let queue: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.retry_dead.as_str()))
                .bind(id.0)
                .bind(now_micros())
                .fetch_optional(&self.inner.writer)
                .await?;
        match queue {
            Some(queue) => {
                self.notify([queue.as_str()]);
                Ok(())
            }
            None => Err(self.explain_miss(id, "retry", "dead or cancelled").await),
        }
    }

    async fn retry_dead_all(&self, queue: &str, kind: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.retry_dead_all.as_str()))
            .bind(queue)
            .bind(kind)
            .bind(now_micros())
            .execute(&self.inner.writer)
            .await?;
        if done.rows_affected() > 0 {
            self.notify([queue]);
        }
        Ok(done.rows_affected())
    }

    async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        let state: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.cancel.as_str()))
                .bind(id.0)
                .bind(now_micros())
                .fetch_optional(&self.inner.writer)
                .await?;
        match state {
            Some(state) => state.parse(),
            None => cancel_missed(
                self.explain_miss(id, "cancel", "pending, failed or running")
                    .await,
            ),
        }
    }

    async fn pause(&self, queue: &str) -> Result<(), StoreError> {
        set_paused(self, queue, true).await
    }

    async fn resume(&self, queue: &str) -> Result<(), StoreError> {
        set_paused(self, queue, false).await?;
        self.notify([queue]);
        Ok(())
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let now = now_micros();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.stats.as_str()))
            .bind(now)
            .fetch_all(&self.inner.reader)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.reader)
            .await?;
        let mut stats = QueueStatsBuilder::default();
        for row in &paused {
            stats.paused(row.try_get("name")?, row.try_get("paused")?);
        }
        for row in &rows {
            let age = row
                .try_get::<Option<i64>, _>("oldest")?
                .map(|oldest| Duration::from_micros(now.saturating_sub(oldest).max(0) as u64));
            stats.count(
                row.try_get("queue")?,
                read_state(row, "state")?,
                row.try_get("n")?,
                age,
            );
        }
        Ok(stats.build())
    }

    async fn listen(&self) -> Result<Wakeups, StoreError> {
        let rx = self.inner.notify.subscribe();
        match self.inner.external_writes {
            // A file: other processes may write to it too; watch for their commits on a
            // read connection of the listener's own.
            Some(every) => {
                let conn = self.inner.listeners.acquire().await?;
                Ok(Wakeups::file(rx, conn, every))
            }
            None => Ok(Wakeups::local(rx)),
        }
    }

    async fn delete_finished(&self, retention: Retention) -> Result<u64, StoreError> {
        retention.validate()?;
        let now = now_micros();
        let mut total = 0;
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.delete_finished.as_str()))
                .bind(now.saturating_sub(micros(retention.succeeded)))
                .bind(now.saturating_sub(micros(retention.dead)))
                .bind(i64::from(retention.batch_size))
                .execute(&self.inner.writer)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < u64::from(retention.batch_size) {
                return Ok(total);
            }
        }
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.job.as_str()))
            .bind(id.0)
            .fetch_optional(&self.inner.reader)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list(&self, list: &ListJobs) -> Result<JobPage, StoreError> {
        let size = list.page_size()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.list.as_str()))
            .bind(&list.queue)
            .bind(&list.kind)
            .bind(list.state.map(JobState::as_str))
            .bind(list.before.map(|id| id.0))
            .bind(size + 1)
            .fetch_all(&self.inner.reader)
            .await?;
        let jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobPage::from_overfetch(jobs, size))
    }

    async fn inbox_delete_older_than(
        &self,
        age: Duration,
        batch_size: u32,
    ) -> Result<u64, StoreError> {
        let cutoff = now_micros().saturating_sub(micros(age));
        let batch = i64::from(batch_size.max(1));
        let mut total = 0;
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_delete.as_str()))
                .bind(cutoff)
                .bind(batch)
                .execute(&self.inner.writer)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < batch as u64 {
                return Ok(total);
            }
        }
    }

    async fn leader_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        crate::job::validate_name("name", name)?;
        crate::job::validate_name("holder", holder)?;
        let now = now_micros();
        let row: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.leader_acquire.as_str()))
                .bind(name)
                .bind(holder)
                .bind(now.saturating_add(micros(ttl)))
                .bind(now)
                .fetch_optional(&self.inner.writer)
                .await?;
        Ok(row.as_deref() == Some(holder))
    }

    async fn leader_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.leader_release.as_str()))
            .bind(name)
            .bind(holder)
            .execute(&self.inner.writer)
            .await?;
        Ok(())
    }
}

impl OutboxStore for SqliteStore {
    type Database = Sqlite;

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.write_tx().await
    }

    async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_many_in(tx, vec![job]).await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        validate_all(&jobs, self.inner.max_payload_bytes)?;
        let out = self.insert_all(tx, &jobs).await?;
        self.inner.observe.enqueued(&jobs, &out);
        // Listeners may look before the caller commits; the job is then found at the next
        // wake-up or poll. Through `begin()` the caller holds the writer, so a claim prompted
        // by this waits for the commit and finds the job.
        self.notify(jobs.iter().map(|j| j.queue.as_str()));
        Ok(out)
    }

    async fn inbox_record(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        consumer: &str,
        message_key: &str,
    ) -> Result<bool, StoreError> {
        crate::job::validate_name("consumer", consumer)?;
        crate::job::validate_name("message_key", message_key)?;
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_record.as_str()))
            .bind(consumer)
            .bind(message_key)
            .bind(now_micros())
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn set_paused(store: &SqliteStore, queue: &str, paused: bool) -> Result<(), StoreError> {
    crate::job::validate_name("queue", queue)?;
    sqlx::query(sqlx::AssertSqlSafe(store.inner.sql.set_paused.as_str()))
        .bind(queue)
        .bind(paused)
        .bind(now_micros())
        .execute(&store.inner.writer)
        .await?;
    store.inner.observe.paused(queue, paused);
    Ok(())
}

async fn migrate_sqlite(pool: &SqlitePool, names: &Names) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let table = names.render("{t}migrations");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_at INTEGER NOT NULL)"
    )))
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut *tx)
            .await?;
    migrate::check_not_newer(&applied, migrate::SQLITE)?;
    for m in migrate::SQLITE {
        if applied.contains(&m.version) {
            continue;
        }
        let fail = |source| StoreError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(m.render(names)))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, name, applied_at) VALUES (?1, ?2, ?3)"
        )))
        .bind(m.version)
        .bind(m.name)
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied SQLite migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, micros)
}

fn micros_to_time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} µs is out of range")))
}

fn read_state(row: &SqliteRow, column: &str) -> Result<JobState, StoreError> {
    row.try_get::<&str, _>(column)?.parse()
}

fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(micros_to_time)
        .transpose()
}

fn lease_of_row(row: &SqliteRow) -> Result<Lease, sqlx::Error> {
    Ok(Lease {
        id: JobId(row.try_get("id")?),
        token: LeaseToken(row.try_get("lease_token")?),
    })
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let json = |column: &str| -> Result<Option<Value>, StoreError> {
        row.try_get::<Option<&str>, _>(column)?
            .map(|s| serde_json::from_str(s).map_err(StoreError::from))
            .transpose()
    };
    let count = |column: &str| -> Result<u32, StoreError> {
        let n: i64 = row.try_get(column)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} = {n}")))
    };
    Ok(Job {
        id: JobId(row.try_get("id")?),
        queue: row.try_get("queue")?,
        kind: row.try_get("kind")?,
        payload: json("payload")?.unwrap_or(Value::Null),
        priority: u8::try_from(row.try_get::<i64, _>("priority")?)
            .map_err(|_| StoreError::Corrupt("priority out of range".into()))?,
        run_at: micros_to_time(row.try_get("run_at")?)?,
        state: read_state(row, "state")?,
        attempt: count("attempt")?,
        max_attempts: count("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_token: row
            .try_get::<Option<i64>, _>("lease_token")?
            .map(LeaseToken),
        lease_expires_at: opt_time(row, "lease_expires_at")?,
        cancel_requested: row.try_get("cancel_requested")?,
        idempotency_key: row.try_get("idempotency_key")?,
        ordering_key: row.try_get("ordering_key")?,
        last_error: row.try_get("last_error")?,
        result: json("result")?,
        created_at: micros_to_time(row.try_get("created_at")?)?,
        updated_at: micros_to_time(row.try_get("updated_at")?)?,
        finished_at: opt_time(row, "finished_at")?,
        metadata: json("metadata")?.unwrap_or_else(|| Value::Object(Default::default())),
    })
}
