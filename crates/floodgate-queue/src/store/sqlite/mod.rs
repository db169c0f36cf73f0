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

mod claim;
mod insert;
mod migrate;
mod open;
mod rows;
mod sql;
mod store;
pub(crate) mod wakeup;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;

use self::sql::Sql;
use crate::error::StoreError;
use crate::observe::Observe;
use crate::store::migrate::{Names, validate_identifier};

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
    ///
    /// # Cancel safety
    ///
    /// Nothing is left half-done: the migrations run in one transaction, rolled back if the
    /// future is dropped before it commits. The file may already exist then (created empty,
    /// or migrated if the commit happened); opening it again finishes the job.
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        validate_identifier("table_prefix", &self.table_prefix, 40)?;
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
        migrate::run(&writer, &names).await?;
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
    ///
    /// # Cancel safety
    ///
    /// Nothing is left half-done: the migrations run in one transaction, rolled back if the
    /// future is dropped before it commits. The file may already exist then (created empty,
    /// or migrated if the commit happened); opening it again finishes the job.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStore::builder(path).open().await
    }

    /// A store in memory, gone when the last clone is dropped (for tests and examples).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing behind.
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
    ///
    /// # Cancel safety
    ///
    /// The writer pool is closed first, then the reader pool; each refuses new work from the
    /// moment its turn comes. Dropping the future part-way leaves the pools it had not reached
    /// open (call it again), and the connections still in use are closed as they come back.
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

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.inner.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}
