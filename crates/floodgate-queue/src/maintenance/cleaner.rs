//! The cleaner: deletes finished jobs and old inbox keys past their retention, in bounded
//! batches (each its own short statement).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Retention, Store};

/// Applies `retention` (and `inbox` to inbox keys) every `every` until `term` ends.
pub(super) async fn run<S: Store>(
    store: S,
    retention: Retention,
    inbox: Option<Duration>,
    every: Duration,
    term: CancellationToken,
) {
    loop {
        match store.delete_finished(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "cleaner: deleted finished jobs"),
            Err(e) => tracing::warn!(error = %e, "cleaner: could not delete finished jobs"),
        }
        if let Some(age) = inbox {
            match store
                .inbox_delete_older_than(age, retention.batch_size)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "cleaner: forgot old inbox keys"),
                Err(e) => tracing::warn!(error = %e, "cleaner: could not forget inbox keys"),
            }
        }
        tokio::select! {
            _ = term.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
