//! Idempotent consumers: an effect happens once per (consumer, message key), however often
//! the message is delivered.
//!
//! The key is recorded in an inbox table with a unique constraint *in the same transaction as
//! the effect*, so either both commit or neither does; a duplicate delivery finds the key and
//! skips the effect. A concurrent duplicate waits for the first transaction and then sees the
//! key. An in-memory LRU of keys committed here answers most repeats without a query; keys
//! enter it only after their commit.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_queue::{Delivery, Inbox, OutboxStore, SqliteStore};
//!
//! let store = SqliteStore::in_memory().await?;
//! sqlx::query("CREATE TABLE balances (account TEXT PRIMARY KEY, cents INTEGER)")
//!     .execute(store.pool()).await?;
//! sqlx::query("INSERT INTO balances VALUES ('ada', 0)").execute(store.pool()).await?;
//! let inbox = Inbox::new(store.clone());
//!
//! for _delivery in 0..3 {   // the broker delivers "tx-42" three times
//!     let tx = store.begin().await?;
//!     inbox
//!         .process_once(tx, "projector", "tx-42", |tx| {
//!             Box::pin(async move {
//!                 sqlx::query("UPDATE balances SET cents = cents + 500 WHERE account = 'ada'")
//!                     .execute(&mut **tx)
//!                     .await
//!             })
//!         })
//!         .await?;
//! }
//! let cents: i64 = sqlx::query_scalar("SELECT cents FROM balances").fetch_one(store.pool()).await?;
//! assert_eq!(cents, 500);
//! assert_eq!(inbox.stats().duplicates, 2);
//! # Ok(()) }
//! ```

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use lru::LruCache;

use crate::error::StoreError;
use crate::store::OutboxStore;

/// What [`Inbox::process_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<T> {
    /// First delivery: the effect ran and committed with the key; its value.
    Processed(T),
    /// Seen before: the effect did not run (the transaction was rolled back).
    Duplicate,
}

/// Why [`Inbox::process_once`] failed; the transaction was rolled back either way.
#[derive(Debug, thiserror::Error)]
pub enum InboxError<E> {
    /// The effect failed.
    #[error("the effect failed: {0}")]
    Effect(E),
    /// Recording the key or committing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E> From<sqlx::Error> for InboxError<E> {
    fn from(e: sqlx::Error) -> Self {
        InboxError::Store(e.into())
    }
}

/// Counts of an [`Inbox`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Effects committed.
    pub processed: u64,
    /// Deliveries skipped as duplicates (from the cache or the table).
    pub duplicates: u64,
    /// Of those, answered by the in-memory cache without a query.
    pub cache_hits: u64,
}

/// Exactly-once effects for at-least-once deliveries. See the [module docs](self).
pub struct Inbox<S: OutboxStore> {
    store: S,
    cache: Mutex<LruCache<(String, String), ()>>,
    processed: AtomicU64,
    duplicates: AtomicU64,
    cache_hits: AtomicU64,
}

impl<S: OutboxStore> fmt::Debug for Inbox<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Keys the cache remembers unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

impl<S: OutboxStore> Inbox<S> {
    /// An inbox on `store` with a cache of 10,000 keys.
    pub fn new(store: S) -> Self {
        Inbox::with_cache_capacity(store, DEFAULT_CACHE_CAPACITY)
    }

    /// An inbox whose cache remembers `capacity` keys (at least 1).
    pub fn with_cache_capacity(store: S, capacity: usize) -> Self {
        Inbox {
            store,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            processed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<(String, String), ()>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `effect` in `tx` and commits it with the key `(consumer, message_key)`, unless
    /// that key was processed before: then the effect does not run and `tx` is rolled back.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back (effect and key together).
    pub async fn process_once<T, E, F>(
        &self,
        mut tx: sqlx::Transaction<'static, S::Database>,
        consumer: &str,
        message_key: &str,
        effect: F,
    ) -> Result<Delivery<T>, InboxError<E>>
    where
        F: for<'t> FnOnce(
            &'t mut sqlx::Transaction<'static, S::Database>,
        ) -> BoxFuture<'t, Result<T, E>>,
    {
        let key = (consumer.to_owned(), message_key.to_owned());
        if self.cache().get(&key).is_some() {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Delivery::Duplicate);
        }
        if !self
            .store
            .inbox_record(&mut tx, consumer, message_key)
            .await?
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            self.cache().put(key, ());
            return Ok(Delivery::Duplicate);
        }
        let value = effect(&mut tx).await.map_err(InboxError::Effect)?;
        tx.commit().await?;
        self.cache().put(key, ());
        self.processed.fetch_add(1, Ordering::Relaxed);
        Ok(Delivery::Processed(value))
    }

    /// Forgets keys recorded longer ago than `age` (a message redelivered after that runs
    /// again), 1,000 rows a statement; returns how many went.
    ///
    /// # Cancel safety
    ///
    /// Each batch is its own statement: dropping the future keeps the batches already
    /// deleted and leaves the rest. The in-process cache is cleared only when the call
    /// completes, so until then it may still answer a forgotten key as a duplicate (nothing
    /// runs twice).
    pub async fn forget_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let n = self.store.inbox_delete_older_than(age, 1_000).await?;
        if n > 0 {
            self.cache().clear();
        }
        Ok(n)
    }

    /// Counts so far.
    pub fn stats(&self) -> InboxStats {
        InboxStats {
            processed: self.processed.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }
}
