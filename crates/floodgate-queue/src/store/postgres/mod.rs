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

mod claim;
mod connect;
mod cursor;
mod insert;
mod migrate;
mod rows;
mod sql;
mod store;
pub(crate) mod wakeup;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use self::cursor::Cursors;
use self::sql::Sql;
use crate::error::StoreError;
use crate::observe::Observe;
use crate::store::migrate::{Names, validate_identifier};

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
    ///
    /// # Cancel safety
    ///
    /// Nothing is left half-done: creating the schema and the migrations run in one
    /// transaction, rolled back if the future is dropped before it commits; the connections
    /// opened so far are dropped with it.
    pub async fn connect(self) -> Result<PgStore, StoreError> {
        let names = match &self.schema {
            Some(schema) => {
                // The NOTIFY channel `floodgate_<schema>` must fit in 63 bytes.
                validate_identifier("schema", schema, 53)?;
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
        migrate::run(&pool, self.schema.as_deref(), &names).await?;
        migrate::check_functions(&pool, &names, self.max_payload_bytes).await?;
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
    ///
    /// # Cancel safety
    ///
    /// Nothing is left half-done: creating the schema and the migrations run in one
    /// transaction, rolled back if the future is dropped before it commits; the connections
    /// opened so far are dropped with it.
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
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once polled: the pool refuses new work from the first poll; dropping the
    /// future only stops waiting for the connections in use, which are closed as they come
    /// back.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Wakes the listeners of `queue` (enqueues need not: a trigger does it).
    async fn notify(&self, queue: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.notify.as_str()))
            .bind(queue)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }
}
