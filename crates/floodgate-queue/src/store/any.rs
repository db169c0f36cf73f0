//! [`AnyStore`]: a job store whose backend is chosen at run time, from configuration.

use chrono::{DateTime, Utc};
use serde_json::Value;

#[cfg(feature = "postgres")]
use super::postgres::PgStore;
#[cfg(feature = "sqlite")]
use super::sqlite::SqliteStore;
use super::{
    Claim, Completion, HeldStatus, JobPage, LeaseStatus, ListJobs, QueueStats, Rescued, Retention,
    Store,
};
use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, NewJob};
use crate::store::wakeup::Wakeups;

/// A job store on the backend chosen at run time.
///
/// [`Store`] returns `impl Future` from its methods, so it cannot be a trait object; a program
/// that picks SQLite or PostgreSQL from a setting (the server does) holds an `AnyStore`
/// instead: an enum over the backends compiled in, dispatching every method to the one it
/// holds. It passes the same conformance suite as the backends themselves.
///
/// Transactions belong to one backend, so `AnyStore` is not an
/// [`OutboxStore`](super::OutboxStore): for writes inside your own transaction, take the
/// backend out with [`AnyStore::as_sqlite`] or [`AnyStore::as_postgres`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use floodgate_queue::{AnyStore, Claim, NewJob, Store};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir()?;
/// // A file path (or `sqlite://path`) opens SQLite; `postgres://…` connects to PostgreSQL.
/// let store = AnyStore::open(dir.path().join("jobs.db").to_str().unwrap()).await?;
/// assert_eq!(store.backend(), "sqlite");
/// store.enqueue(NewJob::new("email", json!({"to": "ada"}))).await?;
/// let jobs = store.claim(&Claim::new("w", 10)).await?;
/// assert_eq!(jobs.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// The embedded SQLite backend.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// The PostgreSQL backend.
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store `target` names with each backend's default settings:
    /// `postgres://…` or `postgresql://…` connects to PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or a plain file path opens (creating) a SQLite file.
    ///
    /// Fails with [`StoreError::Invalid`] for another scheme or a backend not compiled in,
    /// and with [`StoreError::Open`] when the database cannot be opened or reached.
    ///
    /// # Cancel safety
    ///
    /// As the backend's own: [`SqliteStore::open`] or [`PgStore::connect`] (nothing is left
    /// half-done; the migrations roll back if not committed).
    pub async fn open(target: &str) -> Result<AnyStore, StoreError> {
        match Backend::of(target)? {
            #[cfg(feature = "postgres")]
            Backend::Postgres => Ok(AnyStore::Postgres(PgStore::connect(target).await?)),
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => Err(not_built("postgres")),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(path).await?)),
            #[cfg(not(feature = "sqlite"))]
            Backend::Sqlite(_) => Err(not_built("sqlite")),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => "postgres",
        }
    }

    /// The SQLite store, if that is the backend.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match self {
            AnyStore::Sqlite(s) => Some(s),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL store, if that is the backend.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match self {
            AnyStore::Postgres(s) => Some(s),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Closes the backend's connections.
    ///
    /// # Cancel safety
    ///
    /// As the backend's own: [`SqliteStore::close`] or [`PgStore::close`].
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<SqliteStore> for AnyStore {
    fn from(store: SqliteStore) -> Self {
        AnyStore::Sqlite(store)
    }
}

#[cfg(feature = "postgres")]
impl From<PgStore> for AnyStore {
    fn from(store: PgStore) -> Self {
        AnyStore::Postgres(store)
    }
}

/// The error for a backend this build leaves out.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn not_built(feature: &str) -> StoreError {
    StoreError::invalid(
        "database_url",
        format!("this build has no {feature} support (build with the `{feature}` feature)"),
    )
}

/// Which backend a target string names (what [`AnyStore::open`] accepts), for callers that
/// open the backend themselves with their own builder settings.
///
/// ```
/// use floodgate_queue::store::Backend;
///
/// assert_eq!(Backend::of("postgres://app@db/jobs").unwrap(), Backend::Postgres);
/// assert_eq!(Backend::of("sqlite://jobs.db").unwrap(), Backend::Sqlite("jobs.db"));
/// assert_eq!(Backend::of("./jobs.db").unwrap(), Backend::Sqlite("./jobs.db"));
/// assert!(Backend::of("mysql://db/jobs").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend<'a> {
    /// A `postgres://` or `postgresql://` URL (the whole target is the URL).
    Postgres,
    /// A SQLite file at this path.
    Sqlite(&'a str),
}

impl<'a> Backend<'a> {
    /// Parses `target`; [`StoreError::Invalid`] for another scheme.
    pub fn of(target: &'a str) -> Result<Backend<'a>, StoreError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        let path = match target.split_once("://") {
            Some(("sqlite", path)) => path,
            Some((scheme, _)) => {
                return Err(StoreError::invalid(
                    "database_url",
                    format!(
                        "unknown scheme {scheme:?}: give postgres://user@host/database for \
                         PostgreSQL, or a file path (or sqlite://path) for SQLite"
                    ),
                ));
            }
            None => target.strip_prefix("sqlite:").unwrap_or(target),
        };
        Ok(Backend::Sqlite(path))
    }
}

/// Calls `$call` on the backend store `$s` the enum holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($s) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        dispatch!(self, s => s.enqueue(job).await)
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        dispatch!(self, s => s.enqueue_many(jobs).await)
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Job>, StoreError> {
        dispatch!(self, s => s.claim(claim).await)
    }

    async fn start_held(&self, leases: &[Lease]) -> Result<Vec<HeldStatus>, StoreError> {
        dispatch!(self, s => s.start_held(leases).await)
    }

    async fn release_held(&self, leases: &[Lease]) -> Result<Vec<HeldStatus>, StoreError> {
        dispatch!(self, s => s.release_held(leases).await)
    }

    async fn extend_leases(
        &self,
        worker_id: &str,
        leases: &[Lease],
        ttl: std::time::Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        dispatch!(self, s => s.extend_leases(worker_id, leases, ttl).await)
    }

    async fn complete(&self, lease: Lease, result: Option<Value>) -> Result<(), StoreError> {
        dispatch!(self, s => s.complete(lease, result).await)
    }

    async fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<JobId>, StoreError> {
        dispatch!(self, s => s.complete_many(completions).await)
    }

    async fn fail(
        &self,
        lease: Lease,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<JobState, StoreError> {
        dispatch!(self, s => s.fail(lease, error, retry_at).await)
    }

    async fn dead(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.dead(lease, error).await)
    }

    async fn snooze(&self, lease: Lease, until: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, s => s.snooze(lease, until).await)
    }

    async fn record_attempt(&self, lease: Lease, attempt: Value) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_attempt(lease, attempt).await)
    }

    async fn rescue_expired(&self, limit: u32) -> Result<Vec<Rescued>, StoreError> {
        dispatch!(self, s => s.rescue_expired(limit).await)
    }

    async fn retry_dead(&self, id: JobId) -> Result<(), StoreError> {
        dispatch!(self, s => s.retry_dead(id).await)
    }

    async fn retry_dead_all(&self, queue: &str, kind: Option<&str>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.retry_dead_all(queue, kind).await)
    }

    async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        dispatch!(self, s => s.cancel(id).await)
    }

    async fn pause(&self, queue: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.pause(queue).await)
    }

    async fn resume(&self, queue: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.resume(queue).await)
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        dispatch!(self, s => s.queue_stats().await)
    }

    async fn queue_activity(
        &self,
        finished_since: chrono::DateTime<chrono::Utc>,
        settle: std::time::Duration,
    ) -> Result<super::QueueActivity, StoreError> {
        dispatch!(self, s => s.queue_activity(finished_since, settle).await)
    }

    async fn count(&self, list: &ListJobs) -> Result<u64, StoreError> {
        dispatch!(self, s => s.count(list).await)
    }

    async fn failure_groups(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::FailureGroup>, StoreError> {
        dispatch!(self, s => s.failure_groups(queue, kind, limit).await)
    }

    async fn recent_waits(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<std::time::Duration>, StoreError> {
        dispatch!(self, s => s.recent_waits(since, limit).await)
    }

    async fn pause_group(&self, group: &str, reason: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.pause_group(group, reason).await)
    }

    async fn resume_group(&self, group: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.resume_group(group).await)
    }

    async fn paused_groups(&self) -> Result<Vec<super::PausedGroup>, StoreError> {
        dispatch!(self, s => s.paused_groups().await)
    }

    async fn listen(&self) -> Result<Wakeups, StoreError> {
        dispatch!(self, s => s.listen().await)
    }

    async fn delete_finished(&self, retention: Retention) -> Result<u64, StoreError> {
        dispatch!(self, s => s.delete_finished(retention).await)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        dispatch!(self, s => s.job(id).await)
    }

    async fn list(&self, list: &ListJobs) -> Result<JobPage, StoreError> {
        dispatch!(self, s => s.list(list).await)
    }

    async fn inbox_delete_older_than(
        &self,
        age: std::time::Duration,
        batch_size: u32,
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.inbox_delete_older_than(age, batch_size).await)
    }

    async fn leader_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.leader_acquire(name, holder, ttl).await)
    }

    async fn leader_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.leader_release(name, holder).await)
    }
}
