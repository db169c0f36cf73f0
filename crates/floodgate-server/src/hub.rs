//! One listener for the whole server: the store's wake-ups (LISTEN/NOTIFY on PostgreSQL,
//! in-process and file-change notices on SQLite, a poll every second otherwise) counted in a
//! watch channel, so any number of long-polling claims wait on one connection.

use std::time::Duration;

use floodgate_queue::{AnyStore, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Counts wake-ups; a waiter sees every change after it subscribed.
#[derive(Debug, Clone)]
pub(crate) struct WakeHub {
    rx: watch::Receiver<u64>,
}

impl WakeHub {
    /// Starts listening on the current runtime; stops when the last hub clone is dropped or
    /// `stop` is cancelled.
    pub(crate) fn start(store: AnyStore, stop: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                match store.listen().await {
                    Ok(wakeups) => {
                        let mut wakeups = wakeups.poll_interval(Duration::from_secs(1));
                        loop {
                            tokio::select! {
                                _ = tx.closed() => return,
                                () = stop.cancelled() => return,
                                _ = wakeups.next() => tx.send_modify(|n| *n += 1),
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for wake-ups; retrying in 1 s");
                        tokio::select! {
                            _ = tx.closed() => return,
                            () = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                tx.send_modify(|n| *n += 1);
                            }
                        }
                    }
                }
            }
        });
        WakeHub { rx }
    }

    /// A receiver that sees the next wake-up.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }
}
