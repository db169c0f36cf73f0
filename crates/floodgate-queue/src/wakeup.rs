//! Wake-ups for idle workers: a notification when jobs are enqueued, and a polling tick as
//! the fallback for everything a notification can miss (a dropped connection, a job whose
//! `run_at` arrives, a retry coming due, a producer in another process on SQLite).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), floodgate_queue::StoreError> {
//! use std::time::Duration;
//! use floodgate_queue::{NewJob, SqliteStore, Store, Wakeup};
//! use serde_json::json;
//!
//! let store = SqliteStore::in_memory().await?;
//! let mut wakeups = store.listen().await?.poll_interval(Duration::from_secs(1));
//! assert_eq!(wakeups.next().await, Wakeup::Poll); // the first tick is immediate: look once
//! store.enqueue(NewJob::new("email", json!({}))).await?;
//! assert_eq!(wakeups.next().await, Wakeup::Enqueued { queue: "default".into() });
//! # Ok(()) }
//! ```

#[cfg(feature = "sqlite")]
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use tokio::sync::broadcast;
use tokio::time::{Interval, MissedTickBehavior};

/// How often [`Wakeups`] ticks without a notification unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a worker should look for jobs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// Jobs were enqueued in this queue.
    Enqueued {
        /// The queue.
        queue: String,
    },
    /// The polling interval passed, or notifications may have been missed: look in every
    /// queue.
    Poll,
}

/// A stream of [`Wakeup`]s from [`Store::listen`](crate::Store::listen).
#[derive(Debug)]
pub struct Wakeups {
    source: Source,
    tick: Interval,
}

#[derive(Debug)]
enum Source {
    /// SQLite in memory: in-process notifications only.
    #[cfg(feature = "sqlite")]
    Local(Option<broadcast::Receiver<Arc<str>>>),
    /// SQLite: in-process notifications, and commits by other processes on the same file,
    /// seen as a change of `PRAGMA data_version` on a connection of the listener's own.
    #[cfg(feature = "sqlite")]
    File {
        local: Option<broadcast::Receiver<Arc<str>>>,
        conn: Box<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
        every: Interval,
        version: Option<i64>,
    },
    #[cfg(feature = "postgres")]
    Postgres(Box<sqlx::postgres::PgListener>),
}

impl Wakeups {
    #[cfg(feature = "sqlite")]
    pub(crate) fn local(rx: broadcast::Receiver<Arc<str>>) -> Self {
        Wakeups::new(Source::Local(Some(rx)))
    }

    /// In-process notifications plus other processes' commits, checked every `every`.
    #[cfg(feature = "sqlite")]
    pub(crate) fn file(
        rx: broadcast::Receiver<Arc<str>>,
        conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
        every: Duration,
    ) -> Self {
        let mut every = tokio::time::interval(every);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Wakeups::new(Source::File {
            local: Some(rx),
            conn: Box::new(conn),
            every,
            version: None,
        })
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(listener: sqlx::postgres::PgListener) -> Self {
        Wakeups::new(Source::Postgres(Box::new(listener)))
    }

    fn new(source: Source) -> Self {
        let mut tick = tokio::time::interval(DEFAULT_POLL_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Wakeups { source, tick }
    }

    /// Ticks every `every` (default 1 s) when nothing is notified. The first tick is
    /// immediate.
    ///
    /// # Panics
    ///
    /// If `every` is zero.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        assert!(!every.is_zero(), "poll interval must be positive");
        self.tick = tokio::time::interval(every);
        self.tick
            .set_missed_tick_behavior(MissedTickBehavior::Delay);
        self
    }

    /// The next reason to look for jobs.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a wake-up dropped by cancellation is at worst seen at the next poll tick.
    pub async fn next(&mut self) -> Wakeup {
        tokio::select! {
            biased;
            wakeup = self.source.recv() => {
                self.tick.reset();
                wakeup
            }
            _ = self.tick.tick() => Wakeup::Poll,
        }
    }
}

#[cfg(feature = "sqlite")]
async fn local(slot: &mut Option<broadcast::Receiver<Arc<str>>>) -> Wakeup {
    let Some(rx) = slot else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(queue) => Wakeup::Enqueued {
            queue: queue.to_string(),
        },
        Err(broadcast::error::RecvError::Lagged(_)) => Wakeup::Poll,
        Err(broadcast::error::RecvError::Closed) => {
            *slot = None;
            Wakeup::Poll
        }
    }
}

impl Source {
    async fn recv(&mut self) -> Wakeup {
        match self {
            #[cfg(feature = "sqlite")]
            Source::Local(slot) => local(slot).await,
            #[cfg(feature = "sqlite")]
            Source::File {
                local: slot,
                conn,
                every,
                version,
            } => loop {
                tokio::select! {
                    biased;
                    wakeup = local(slot) => return wakeup,
                    _ = every.tick() => {
                        let now: Result<i64, _> = sqlx::query_scalar("PRAGMA data_version")
                            .fetch_one(&mut ***conn)
                            .await;
                        match (now, *version) {
                            (Ok(now), Some(before)) if now != before => {
                                *version = Some(now);
                                return Wakeup::Poll;
                            }
                            (Ok(now), _) => *version = Some(now),
                            (Err(_), _) => {}
                        }
                    }
                }
            },
            #[cfg(feature = "postgres")]
            Source::Postgres(listener) => match listener.try_recv().await {
                Ok(Some(notification)) => Wakeup::Enqueued {
                    queue: notification.payload().to_owned(),
                },
                // The connection dropped (it reconnects on the next call): anything notified
                // meanwhile is lost, so look everywhere.
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost; reconnecting and polling");
                    Wakeup::Poll
                }
                Err(error) => {
                    tracing::warn!(%error, "LISTEN reconnect failed; polling until it works");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Wakeup::Poll
                }
            },
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            _ => std::future::pending().await,
        }
    }
}
