//! The shutdown protocol.
//!
//! # Implementation
//!
//! Shutdown runs once; a second call waits for the first one's summary. Its steps, each
//! driven by one of the [`Shared`] tokens or trackers:
//!
//! 1. **Stop claiming** (`stop_claiming`). The claim loop ends after the claim in flight, if
//!    any. The jobs that claim returns start as usual for kinds claimed directly; for kinds
//!    claimed ahead they join the buffer, and the buffer's jobs, none of which has started,
//!    are put back to `pending` at once (a snooze to now: their attempt is not spent).
//! 2. **Wait for the claim loop** (`dispatcher`), **then for the jobs** (`jobs`), both until
//!    the deadline. The order matters: a claim that landed after the jobs' wait returned
//!    would start jobs nobody waits for, left `running` in the database after `shutdown`
//!    returned and missing from the summary.
//! 3. **At the deadline** (`hard_stop`), every handler still running is stopped and its job is
//!    put back to `pending` at once (a snooze to now: the attempt is given back), so another
//!    worker takes it without waiting for the lease to run out. A claim still in flight at
//!    the deadline is waited for; its jobs see the hard stop and are released the same way.
//! 4. **Background tasks end** (`background_stop`): the completion batcher is closed (later
//!    writes go directly to the store), then the heartbeat, the memory watch and the event
//!    forwarders stop.
//!
//! The summary counts the jobs that finished after shutdown began, the jobs released at the
//! deadline and the buffered jobs returned.

use super::*;

/// Runs the protocol above (once) and returns its summary.
pub(in crate::worker) async fn shutdown(
    shared: &Arc<Shared>,
    deadline: Duration,
) -> ShutdownSummary {
    *shared
        .summary
        .get_or_init(|| async {
            tracing::info!(worker = %shared.id, running = shared.running_count(), "worker shutting down");
            let deadline = tokio::time::Instant::now() + deadline;
            shared.stop_claiming.cancel();
            shared.dispatcher.close();
            let claims_over = tokio::time::timeout_at(deadline, shared.dispatcher.wait()).await;
            shared.jobs.close();
            if claims_over.is_err()
                || tokio::time::timeout_at(deadline, shared.jobs.wait()).await.is_err()
            {
                shared.hard_stop.cancel();
                shared.dispatcher.wait().await;
                shared.jobs.wait().await;
            }
            lock(&shared.completer).take();
            shared.background_stop.cancel();
            shared.background.close();
            shared.background.wait().await;
            let summary = ShutdownSummary {
                finished: shared.finished_while_stopping.load(Ordering::Relaxed)
                    - shared.released.load(Ordering::Relaxed),
                released: shared.released.load(Ordering::Relaxed),
                returned: shared.returned.load(Ordering::Relaxed),
            };
            tracing::info!(worker = %shared.id, ?summary, "worker stopped");
            summary
        })
        .await
}
