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

mod event;

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

pub use event::Wakeup;

/// How often [`Wakeups`] ticks without a notification unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A stream of [`Wakeup`]s from [`Store::listen`](crate::Store::listen).
#[derive(Debug)]
pub struct Wakeups {
    source: Source,
    tick: Interval,
}

/// The backend's half of a listener.
#[derive(Debug)]
enum Source {
    #[cfg(feature = "sqlite")]
    Sqlite(crate::store::sqlite::wakeup::Source),
    #[cfg(feature = "postgres")]
    Postgres(crate::store::postgres::wakeup::Source),
}

impl Wakeups {
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(source: crate::store::sqlite::wakeup::Source) -> Self {
        Wakeups::new(Source::Sqlite(source))
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(source: crate::store::postgres::wakeup::Source) -> Self {
        Wakeups::new(Source::Postgres(source))
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

impl Source {
    async fn recv(&mut self) -> Wakeup {
        match self {
            #[cfg(feature = "sqlite")]
            Source::Sqlite(source) => source.recv().await,
            #[cfg(feature = "postgres")]
            Source::Postgres(source) => source.recv().await,
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            _ => std::future::pending().await,
        }
    }
}
