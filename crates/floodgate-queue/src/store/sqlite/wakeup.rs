//! SQLite's wake-ups: enqueues through this store's clones are broadcast in the process; for a
//! file, commits by other processes are seen as a change of `PRAGMA data_version` on a read
//! connection of the listener's own (it reads shared memory, not the disk).

use std::sync::Arc;

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use tokio::sync::broadcast;
use tokio::time::{Interval, MissedTickBehavior};

use super::SqliteStore;
use crate::error::StoreError;
use crate::store::wakeup::Wakeup;

/// Where a SQLite listener's wake-ups come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// In memory: in-process notifications only.
    Local(Option<broadcast::Receiver<Arc<str>>>),
    /// A file: in-process notifications, and other processes' commits, checked every `every`.
    File {
        local: Option<broadcast::Receiver<Arc<str>>>,
        conn: Box<PoolConnection<Sqlite>>,
        every: Interval,
        version: Option<i64>,
    },
}

/// A listener on `store`: for a file, with a read connection of its own (held for the
/// listener's life) to watch for other processes' commits.
pub(super) async fn listen(store: &SqliteStore) -> Result<Source, StoreError> {
    let rx = store.inner.notify.subscribe();
    let source = match store.inner.external_writes {
        Some(every) => {
            let conn = store.inner.listeners.acquire().await?;
            let mut every = tokio::time::interval(every);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Source::File {
                local: Some(rx),
                conn: Box::new(conn),
                every,
                version: None,
            }
        }
        None => Source::Local(Some(rx)),
    };
    Ok(source)
}

impl Source {
    /// The next notification, or `Poll` when another process committed (or notifications
    /// were missed).
    pub(crate) async fn recv(&mut self) -> Wakeup {
        match self {
            Source::Local(slot) => local(slot).await,
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
        }
    }
}

/// The next in-process notification; `Poll` when some were missed; never, once the store is
/// gone.
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
