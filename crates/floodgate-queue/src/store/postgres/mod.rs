//! The PostgreSQL backend, for many nodes sharing one queue.
//!
//! * Claims are one statement: a CTE picks the next runnable rows `FOR UPDATE SKIP LOCKED`
//!   (claimers never wait on each other's rows) and an `UPDATE … RETURNING` leases them.
//! * Batch enqueue is one `INSERT … SELECT FROM UNNEST(…)` however many jobs; completion of
//!   a batch is one `UPDATE … FROM UNNEST(…)`.
//! * A statement-level trigger NOTIFYs once per inserting statement and queue; [`listen`]
//!   (`Store::listen`) turns those into wake-ups, reconnecting after a dropped connection.
//! * Sessions carry `statement_timeout` and `idle_in_transaction_session_timeout`, so a stuck
//!   query or a transaction left open by a crashed caller cannot hold locks (or the MVCC
//!   horizon) for long.
//! * Times come from the database's clock (`now()`), so nodes with skewed clocks agree on
//!   lease expiry.
//!
//! [`listen`]: crate::Store::listen

mod connect;
mod cursor;
mod sql;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use self::cursor::{Cursor, Cursors};
use self::sql::Sql;
use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, LeaseToken, NewJob};
use crate::observe::Observe;
use crate::store::batch::{Written, idempotency_invisible};
use crate::store::migrate::{self, Names};
use crate::store::{
    Claim, Completion, JobPage, LeaseStatus, ListJobs, OutboxStore, QueueStats, QueueStatsBuilder,
    Rescued, Retention, Store, Unreadable, bury_unreadable, cancel_missed, decode_claimed, micros,
    sort_claimed, validate_all, validate_job,
};
use crate::wakeup::Wakeups;

/// The job store on PostgreSQL.
///
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), floodgate_queue::StoreError> {
/// use std::time::Duration;
/// use floodgate_queue::{NewJob, PgStore, Store};
/// use serde_json::json;
///
/// let store = PgStore::builder("postgres://postgres@127.0.0.1:5432/app")?
///     .schema("jobs")                       // tables go in schema "jobs" (created if missing)
///     .max_connections(20)
///     .statement_timeout(Some(Duration::from_secs(30)))
///     .connect()
///     .await?;
/// store.enqueue(NewJob::new("send_email", json!({"to": "ada"}))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// For LISTEN connections, which live outside the pool (see `listen`).
    options: PgConnectOptions,
    sql: Sql,
    cursors: Cursors,
    channel: String,
    observe: Observe,
    max_payload_bytes: usize,
}

/// Settings for a [`PgStore`]; from [`PgStore::builder`] or [`PgStore::builder_with`].
#[derive(Debug, Clone)]
pub struct PgStoreBuilder {
    options: PgConnectOptions,
    schema: Option<String>,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    statement_timeout: Option<Duration>,
    idle_in_transaction_timeout: Option<Duration>,
    test_before_acquire: bool,
    claim_rescan: Option<Duration>,
    name: String,
    max_payload_bytes: usize,
}

impl PgStoreBuilder {
    /// Put the tables in this schema (created if missing) instead of the connection's
    /// `search_path`; several apps can share one database this way.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Pool size (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a free connection (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Close connections idle this long (default 10 minutes; `None` never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Replace connections older than this (default 30 minutes; `None` never).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Per-session `statement_timeout` (default 30 s; `None` leaves the server's).
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Per-session `idle_in_transaction_session_timeout` (default 60 s; `None` leaves the
    /// server's): a transaction left open is ended instead of pinning locks and the MVCC
    /// horizon.
    pub fn idle_in_transaction_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_in_transaction_timeout = timeout;
        self
    }

    /// Ping a pooled connection before each use (default `false`). The ping is a network
    /// round trip per operation and halves the throughput of small ones. Without it, a
    /// connection idle for more than 5 s is still pinged before use, and an operation on a
    /// connection the server dropped while it was busy fails once (the connection is then
    /// discarded), which callers that retry — the worker does — absorb.
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// How long successive claims of one queue continue from where the previous one ended
    /// before a claim reads the queue from its start again (default 1 s; `None`: every claim
    /// reads from the start).
    ///
    /// Continuing keeps claims fast while a long transaction elsewhere pins the MVCC horizon
    /// (dead index entries pile up at the queue's start and nothing can remove them).
    /// Priorities stay strict; the cost is that a job appearing behind the point reached, at
    /// the same priority (an older `run_at`, a late commit, a rescue), can wait up to this
    /// long while the queue has a backlog.
    pub fn claim_rescan(mut self, interval: Option<Duration>) -> Self {
        self.claim_rescan = interval;
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

    /// Connects, creates the schema if asked for, and runs the migrations (under an advisory
    /// lock, so many nodes may start at once).
    pub async fn connect(self) -> Result<PgStore, StoreError> {
        let names = match &self.schema {
            Some(schema) => {
                // The NOTIFY channel `floodgate_<schema>` must fit in 63 bytes.
                migrate::validate_identifier("schema", schema, 53)?;
                Names {
                    table: format!("\"{schema}\".floodgate_"),
                    bare: "floodgate_".to_owned(),
                    channel: format!("floodgate_{schema}"),
                }
            }
            None => Names {
                table: "floodgate_".to_owned(),
                bare: "floodgate_".to_owned(),
                channel: "floodgate".to_owned(),
            },
        };
        // JIT compiles "expensive" plans; a generic claim plan over a large backlog looks
        // expensive on paper and is cheap in fact (it stops after `limit` rows), so JIT would
        // add milliseconds to every claim.
        let mut settings = vec![("jit", "off".to_owned())];
        if let Some(t) = self.statement_timeout {
            settings.push(("statement_timeout", format!("{}ms", t.as_millis().max(1))));
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            settings.push((
                "idle_in_transaction_session_timeout",
                format!("{}ms", t.as_millis().max(1)),
            ));
        }
        let options = self.options.options(settings);
        // One direct connection first: a refused or unreachable server, a bad password or a
        // missing database fail here at once with the real cause, not after the pool's
        // acquire timeout as "pool timed out".
        connect::probe(&options, self.acquire_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            .test_before_acquire(self.test_before_acquire)
            // Without a ping per use, still ping a connection that sat idle for a while: the
            // server may have restarted or a proxy dropped it meanwhile.
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(5) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        migrate_postgres(&pool, self.schema.as_deref(), &names).await?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                options,
                sql: Sql::new(&names),
                cursors: Cursors::new(self.claim_rescan),
                channel: names.channel,
                observe: Observe::new(&self.name),
                max_payload_bytes: self.max_payload_bytes,
            }),
        })
    }
}

impl PgStore {
    /// Settings for a store at `url`: `postgres://user[:password]@host[:port]/database`, with
    /// `?sslmode=require` (or `verify-ca`, `verify-full`) for TLS. Another scheme, or a URL
    /// without a host, is refused here with [`StoreError::Invalid`] showing that shape.
    pub fn builder(url: &str) -> Result<PgStoreBuilder, StoreError> {
        Ok(PgStore::builder_with(connect::parse_url(url)?))
    }

    /// Settings for a store with these connect options.
    pub fn builder_with(options: PgConnectOptions) -> PgStoreBuilder {
        PgStoreBuilder {
            options,
            schema: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: Some(Duration::from_secs(30)),
            idle_in_transaction_timeout: Some(Duration::from_secs(60)),
            test_before_acquire: false,
            claim_rescan: Some(Duration::from_secs(1)),
            name: "default".to_owned(),
            max_payload_bytes: crate::store::DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// Connects to `url` with default settings.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PgStore::builder(url)?.connect().await
    }

    /// The store's pool: use it for business tables that go in the same transactions as jobs.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The NOTIFY channel enqueues signal on.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    async fn notify(&self, queue: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.notify.as_str()))
            .bind(queue)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    async fn insert_one(
        &self,
        conn: &mut PgConnection,
        job: &NewJob,
    ) -> Result<Enqueued, StoreError> {
        let sql = &self.inner.sql;
        let payload = serde_json::to_string(&job.payload)?;
        let metadata = serde_json::to_string(&job.metadata)?;
        // A duplicate key whose row vanishes between the insert and the look-up (retention
        // deleted it) is inserted afresh on the next round.
        for _ in 0..3 {
            let inserted: Option<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.insert_one.as_str()))
                    .bind(&job.queue)
                    .bind(&job.kind)
                    .bind(&payload)
                    .bind(i16::from(job.priority))
                    .bind(job.run_at)
                    .bind(job.max_attempts as i32)
                    .bind(&job.idempotency_key)
                    .bind(&job.ordering_key)
                    .bind(&metadata)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(id) = inserted {
                return Ok(Enqueued {
                    id: JobId(id),
                    inserted: true,
                });
            }
            let existing = self
                .ids_by_key(&mut *conn, &[(&job.queue, job.idempotency_key.as_deref())])
                .await?;
            if let Some(id) = existing.values().next() {
                return Ok(Enqueued {
                    id: *id,
                    inserted: false,
                });
            }
        }
        Err(idempotency_invisible(&job.queue))
    }

    async fn ids_by_key(
        &self,
        conn: &mut PgConnection,
        keys: &[(&String, Option<&str>)],
    ) -> Result<HashMap<(String, String), JobId>, StoreError> {
        let (queues, keys): (Vec<&str>, Vec<&str>) = keys
            .iter()
            .filter_map(|(q, k)| k.map(|k| (q.as_str(), k)))
            .unzip();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.ids_by_key.as_str()))
            .bind(queues)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    (row.try_get("queue")?, row.try_get("idempotency_key")?),
                    JobId(row.try_get("id")?),
                ))
            })
            .collect()
    }

    async fn insert_many(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.len() == 1 {
            return Ok(vec![self.insert_one(conn, &jobs[0]).await?]);
        }
        let mut queues = Vec::with_capacity(jobs.len());
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut payloads = Vec::with_capacity(jobs.len());
        let mut priorities = Vec::with_capacity(jobs.len());
        let mut run_ats = Vec::with_capacity(jobs.len());
        let mut attempts = Vec::with_capacity(jobs.len());
        let mut idem = Vec::with_capacity(jobs.len());
        let mut ordering = Vec::with_capacity(jobs.len());
        let mut metadata = Vec::with_capacity(jobs.len());
        for job in jobs {
            queues.push(job.queue.as_str());
            kinds.push(job.kind.as_str());
            payloads.push(serde_json::to_string(&job.payload)?);
            priorities.push(i16::from(job.priority));
            run_ats.push(job.run_at);
            attempts.push(job.max_attempts as i32);
            idem.push(job.idempotency_key.as_deref());
            ordering.push(job.ordering_key.as_deref());
            metadata.push(serde_json::to_string(&job.metadata)?);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.insert_many.as_str()))
            .bind(queues)
            .bind(kinds)
            .bind(payloads)
            .bind(priorities)
            .bind(run_ats)
            .bind(attempts)
            .bind(idem)
            .bind(ordering)
            .bind(metadata)
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
        let existing = if written.missing().is_empty() {
            HashMap::new()
        } else {
            let keys: Vec<(&String, Option<&str>)> = written
                .missing()
                .iter()
                .map(|(q, k)| (q, Some(k.as_str())))
                .collect();
            self.ids_by_key(conn, &keys).await?
        };
        written
            .finish(jobs, &existing)
            .ok_or_else(|| idempotency_invisible(&jobs[0].queue))
    }

    /// The claim itself: through the cursor first when there is one, then from the start.
    async fn claim_jobs(
        &self,
        claim: &Claim,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        if let Some(max) = claim.cluster_limit {
            return self.claim_capped(claim, max, out).await;
        }
        let mut jobs = Vec::new();
        if let [queue] = claim.queues.as_slice()
            && let Some(cursor) = self.inner.cursors.get(queue, &claim.kinds)
        {
            jobs = self
                .claim_rows(claim, claim.limit, Some(cursor), out)
                .await?;
            if jobs.len() + out.len() == claim.limit as usize
                && let Some(last) = jobs.iter().max_by_key(|j| (j.run_at, j.id))
            {
                self.inner.cursors.after_fast(queue, &claim.kinds, last);
            }
        }
        let short = (claim.limit as usize).saturating_sub(jobs.len() + out.len());
        if short > 0 {
            let before = out.len();
            let full = self.claim_rows(claim, short as u32, None, out).await?;
            if let [queue] = claim.queues.as_slice() {
                let leased = full.len() + out.len() - before;
                let last = (leased == short).then(|| full.last()).flatten();
                self.inner.cursors.after_full(queue, &claim.kinds, last);
            }
            jobs.extend(full);
            sort_claimed(&mut jobs);
        }
        Ok(jobs)
    }

    /// One claim statement: from the start of the queue, or after `cursor`.
    async fn claim_rows(
        &self,
        claim: &Claim,
        limit: u32,
        cursor: Option<Cursor>,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        self.claim_rows_on(&mut conn, claim, limit, cursor, out)
            .await
    }

    /// A claim that never lets more than `max` jobs of its one kind run across the cluster:
    /// claims of that kind queue on a transaction-scoped advisory lock, count what runs and
    /// take only the difference, so racing nodes cannot both take the last slot.
    async fn claim_capped(
        &self,
        claim: &Claim,
        max: u32,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
            .bind(&self.inner.channel)
            .bind(&claim.kinds[0])
            .execute(&mut *tx)
            .await?;
        let running: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.running_of_kind.as_str()))
                .bind(&claim.kinds[0])
                .fetch_one(&mut *tx)
                .await?;
        let room = (i64::from(max) - running).clamp(0, i64::from(claim.limit)) as u32;
        let jobs = if room == 0 {
            Vec::new()
        } else {
            self.claim_rows_on(&mut tx, claim, room, None, out).await?
        };
        tx.commit().await?;
        Ok(jobs)
    }

    /// One claim statement on `conn`; rows it leased but could not read go to `out`.
    async fn claim_rows_on(
        &self,
        conn: &mut PgConnection,
        claim: &Claim,
        limit: u32,
        cursor: Option<Cursor>,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = &self.inner.sql;
        let kinds = (!claim.kinds.is_empty()).then_some(&claim.kinds);
        let text = match (claim.queues.as_slice(), cursor) {
            ([_], Some(_)) => sql.claim_after_cursor.as_str(),
            ([_], None) => sql.claim_one_queue.as_str(),
            _ => sql.claim_queues.as_str(),
        };
        // $1 owner, $2 lease in µs, $3 the queue (or queues), $4 kinds, $5 limit, then the
        // cursor's $6 priority, $7 run_at, $8 id.
        let query = sqlx::query(sqlx::AssertSqlSafe(text))
            .bind(&claim.worker_id)
            .bind(micros(claim.lease_ttl));
        let query = match claim.queues.as_slice() {
            [one] => query.bind(one),
            many => query.bind(many),
        }
        .bind(kinds)
        .bind(i64::from(limit));
        let query = match cursor {
            Some(c) => query.bind(c.priority).bind(c.run_at).bind(c.id),
            None => query,
        };
        let rows = query.fetch_all(&mut *conn).await?;
        let (jobs, unreadable) = decode_claimed(&rows, job_from_row, lease_of_row)?;
        out.extend(unreadable);
        Ok(jobs)
    }

    async fn fenced_execute(
        &self,
        lease: Lease,
        operation: &'static str,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), StoreError> {
        if query.execute(&self.inner.pool).await?.rows_affected() == 1 {
            Ok(())
        } else {
            self.inner.observe.lease_lost(lease.id, operation);
            Err(StoreError::LeaseLost { id: lease.id })
        }
    }

    async fn fenced_state(
        &self,
        lease: Lease,
        operation: &'static str,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<JobState, StoreError> {
        match query.fetch_optional(&self.inner.pool).await? {
            Some(row) => read_state(&row, "state"),
            None => {
                self.inner.observe.lease_lost(lease.id, operation);
                Err(StoreError::LeaseLost { id: lease.id })
            }
        }
    }

    async fn explain_miss(
        &self,
        id: JobId,
        operation: &'static str,
        expected: &'static str,
    ) -> StoreError {
        let state = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.state_of.as_str()))
            .bind(id.0)
            .fetch_optional(&self.inner.pool)
            .await;
        StoreError::missed(id, state, operation, expected)
    }
}

impl Store for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        validate_job(&job, self.inner.max_payload_bytes)?;
        let mut conn = self.inner.pool.acquire().await?;
        let out = self.insert_one(&mut conn, &job).await?;
        self.inner
            .observe
            .enqueued(std::slice::from_ref(&job), std::slice::from_ref(&out));
        Ok(out)
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        validate_all(&jobs, self.inner.max_payload_bytes)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.inner.pool.begin().await?;
        let out = self.insert_many(&mut tx, &jobs).await?;
        tx.commit().await?;
        self.inner.observe.enqueued(&jobs, &out);
        Ok(out)
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Job>, StoreError> {
        claim.validate()?;
        let mut unreadable = Vec::new();
        let jobs = self.claim_jobs(claim, &mut unreadable).await;
        // After the claim's transaction ended: burying takes the rows' locks.
        let leased = unreadable.len();
        bury_unreadable(self, unreadable).await;
        let jobs = jobs?;
        self.inner.observe.claimed(jobs.len() + leased);
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
        let ids: Vec<i64> = leases.iter().map(|l| l.id.0).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token.0).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.extend.as_str()))
            .bind(ids)
            .bind(tokens)
            .bind(worker_id)
            .bind(micros(ttl))
            .fetch_all(&self.inner.pool)
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
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.complete.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(result);
        self.fenced_execute(lease, "complete", query).await?;
        self.inner.observe.finished("succeeded", 1);
        Ok(())
    }

    async fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<JobId>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        crate::store::json::validate_results(&completions)?;
        let ids: Vec<i64> = completions.iter().map(|c| c.lease.id.0).collect();
        let tokens: Vec<i64> = completions.iter().map(|c| c.lease.token.0).collect();
        let results = completions
            .iter()
            .map(|c| c.result.as_ref().map(serde_json::to_string).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let done: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.complete_many.as_str()))
                .bind(ids)
                .bind(tokens)
                .bind(results)
                .fetch_all(&self.inner.pool)
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
        self.inner.observe.finished("succeeded", done.len());
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
            .bind(retry_at);
        let state = self.fenced_state(lease, "fail", query).await?;
        self.inner.observe.finished_state(state);
        Ok(state)
    }

    async fn dead(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.dead.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(error);
        self.fenced_execute(lease, "dead", query).await?;
        self.inner.observe.finished("dead", 1);
        Ok(())
    }

    async fn snooze(&self, lease: Lease, until: DateTime<Utc>) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.snooze.as_str()))
            .bind(lease.id.0)
            .bind(lease.token.0)
            .bind(until);
        let state = self.fenced_state(lease, "snooze", query).await?;
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.rescue.as_str()))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.inner.pool)
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
                .fetch_optional(&self.inner.pool)
                .await?;
        match queue {
            Some(queue) => self.notify(&queue).await,
            None => Err(self.explain_miss(id, "retry", "dead or cancelled").await),
        }
    }

    async fn retry_dead_all(&self, queue: &str, kind: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.retry_dead_all.as_str()))
            .bind(queue)
            .bind(kind)
            .execute(&self.inner.pool)
            .await?;
        if done.rows_affected() > 0 {
            self.notify(queue).await?;
        }
        Ok(done.rows_affected())
    }

    async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        let state: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.cancel.as_str()))
                .bind(id.0)
                .fetch_optional(&self.inner.pool)
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
        self.notify(queue).await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.stats.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        let mut stats = QueueStatsBuilder::default();
        for row in &paused {
            stats.paused(row.try_get("name")?, row.try_get("paused")?);
        }
        for row in &rows {
            let age = row
                .try_get::<Option<i64>, _>("oldest_age_us")?
                .map(|us| Duration::from_micros(us.max(0) as u64));
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
        // A pool of one of its own: a listener holds its connection for as long as it lives,
        // which must neither shrink the store's pool nor keep `close()` waiting.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.inner.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&self.inner.channel).await?;
        Ok(Wakeups::postgres(listener))
    }

    async fn delete_finished(&self, retention: Retention) -> Result<u64, StoreError> {
        retention.validate()?;
        let mut total = 0;
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.delete_finished.as_str()))
                .bind(micros(retention.succeeded))
                .bind(micros(retention.dead))
                .bind(i64::from(retention.batch_size))
                .execute(&self.inner.pool)
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
            .fetch_optional(&self.inner.pool)
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
            .fetch_all(&self.inner.pool)
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
        let batch = i64::from(batch_size.max(1));
        let mut total = 0;
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_delete.as_str()))
                .bind(micros(age))
                .bind(batch)
                .execute(&self.inner.pool)
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
        let row: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.leader_acquire.as_str()))
                .bind(name)
                .bind(holder)
                .bind(micros(ttl))
                .fetch_optional(&self.inner.pool)
                .await?;
        Ok(row.as_deref() == Some(holder))
    }

    async fn leader_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.leader_release.as_str()))
            .bind(name)
            .bind(holder)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }
}

impl OutboxStore for PgStore {
    type Database = Postgres;

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self.inner.pool.begin().await?)
    }

    async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        validate_job(&job, self.inner.max_payload_bytes)?;
        let out = self.insert_one(tx, &job).await?;
        self.inner
            .observe
            .enqueued(std::slice::from_ref(&job), std::slice::from_ref(&out));
        Ok(out)
    }

    async fn enqueue_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        validate_all(&jobs, self.inner.max_payload_bytes)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.insert_many(tx, &jobs).await?;
        self.inner.observe.enqueued(&jobs, &out);
        Ok(out)
    }

    async fn inbox_record(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        consumer: &str,
        message_key: &str,
    ) -> Result<bool, StoreError> {
        crate::job::validate_name("consumer", consumer)?;
        crate::job::validate_name("message_key", message_key)?;
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_record.as_str()))
            .bind(consumer)
            .bind(message_key)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn set_paused(store: &PgStore, queue: &str, paused: bool) -> Result<(), StoreError> {
    crate::job::validate_name("queue", queue)?;
    sqlx::query(sqlx::AssertSqlSafe(store.inner.sql.set_paused.as_str()))
        .bind(queue)
        .bind(paused)
        .execute(&store.inner.pool)
        .await?;
    store.inner.observe.paused(queue, paused);
    Ok(())
}

async fn migrate_postgres(
    pool: &PgPool,
    schema: Option<&str>,
    names: &Names,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // Many nodes may start at once: one migrates, the others wait and then find it done.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('floodgate:migrate:' || $1))")
        .bind(schema.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
    if let Some(schema) = schema {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(&mut *tx)
        .await?;
    }
    let table = names.render("{t}migrations");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (version bigint PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut *tx)
            .await?;
    migrate::check_not_newer(&applied, migrate::POSTGRES)?;
    for m in migrate::POSTGRES {
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
            "INSERT INTO {table} (version, name) VALUES ($1, $2)"
        )))
        .bind(m.version)
        .bind(m.name)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied PostgreSQL migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

fn read_state(row: &PgRow, column: &str) -> Result<JobState, StoreError> {
    row.try_get::<&str, _>(column)?.parse()
}

fn lease_of_row(row: &PgRow) -> Result<Lease, sqlx::Error> {
    Ok(Lease {
        id: JobId(row.try_get("id")?),
        token: LeaseToken(row.try_get("lease_token")?),
    })
}

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    let count = |column: &str| -> Result<u32, StoreError> {
        let n: i32 = row.try_get(column)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} = {n}")))
    };
    Ok(Job {
        id: JobId(row.try_get("id")?),
        queue: row.try_get("queue")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        priority: u8::try_from(row.try_get::<i16, _>("priority")?)
            .map_err(|_| StoreError::Corrupt("priority out of range".into()))?,
        run_at: row.try_get("run_at")?,
        state: read_state(row, "state")?,
        attempt: count("attempt")?,
        max_attempts: count("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_token: row
            .try_get::<Option<i64>, _>("lease_token")?
            .map(LeaseToken),
        lease_expires_at: row.try_get("lease_expires_at")?,
        cancel_requested: row.try_get("cancel_requested")?,
        idempotency_key: row.try_get("idempotency_key")?,
        ordering_key: row.try_get("ordering_key")?,
        last_error: row.try_get("last_error")?,
        result: row.try_get("result")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        metadata: row.try_get("metadata")?,
    })
}
