//! A durable transactional outbox and job queue, on an embedded SQLite file (the default) or
//! on PostgreSQL shared by many nodes.
//!
//! * [`NewJob`] / [`Job`]: what a producer enqueues and what the store keeps (queue, kind, JSON
//!   payload, priority, `run_at`, attempts, lease, idempotency and ordering keys, result).
//! * [`Store`]: every operation — enqueue (alone or in batches), claim in one statement, heartbeats, completion fenced
//!   by a lease token, retries and dead letters, rescue of expired leases, cancel, pause,
//!   wake-ups, retention and reads.
//! * [`OutboxStore`]: enqueue inside the caller's own transaction (the outbox) and the
//!   inbox's exactly-once effects; from any language on PostgreSQL, the SQL function
//!   `floodgate_enqueue` ([`sql`]).
//! * Backends: [`SqliteStore`] (feature `sqlite`, default) and [`PgStore`] (feature
//!   `postgres`), and [`AnyStore`], either one chosen at run time; all pass one conformance
//!   suite.
//!
//! The outbox: a business row and its job commit together or not at all.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_queue::{Claim, NewJob, OutboxStore, SqliteStore, Store};
//! use serde_json::json;
//!
//! let store = SqliteStore::in_memory().await?;
//! sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
//!     .execute(store.pool())
//!     .await?;
//!
//! let mut tx = store.begin().await?;
//! sqlx::query("INSERT INTO orders (id, total) VALUES (1, 4200)").execute(&mut *tx).await?;
//! store.enqueue_in(&mut tx, NewJob::new("order_placed", json!({"order": 1}))).await?;
//! tx.commit().await?; // both rows, or neither
//!
//! let jobs = store.claim(&Claim::new("worker-1", 10)).await?;
//! assert_eq!(jobs[0].payload, json!({"order": 1}));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Without a backend feature only the `Store` trait and the job model are usable; the helpers
// the backends share are then unused by design.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

mod error;
pub mod inbox;
mod job;
mod json;
pub mod leader;
pub mod maintenance;
mod observe;
mod redact;
pub mod relay;
#[cfg(feature = "postgres")]
pub mod sql;
pub mod store;
pub mod worker;

pub use error::StoreError;
pub use inbox::{DEFAULT_CACHE_CAPACITY, Delivery, Inbox, InboxError, InboxStats};
pub use job::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, DEFAULT_QUEUE, Enqueued, Job, JobId, JobState, Lease,
    LeaseToken, MAX_NAME_LEN, NewJob,
};
pub use leader::Singleton;
pub use redact::redact_url;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::AnyStore;
#[cfg(feature = "postgres")]
pub use store::postgres::{PgStore, PgStoreBuilder};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteStore, SqliteStoreBuilder};
pub use store::wakeup;
pub use store::wakeup::{DEFAULT_POLL_INTERVAL, Wakeup, Wakeups};
pub use store::{
    Claim, Completion, DEFAULT_LEASE_TTL, DEFAULT_MAX_PAYLOAD_BYTES, FailureGroup, HeldStatus,
    JobPage, LeaseStatus, ListJobs, MAX_JSON_DEPTH, MAX_SKIP_GROUPS, OutboxStore, PausedGroup,
    QueueActivity, QueueStats, Rescued, Retention, RetryAt, StateCounts, Store,
};

pub use sqlx;
