//! The rescuer: returns jobs whose lease ran out (their worker died or stalled) to `pending`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Rescues expired leases every `every` until `term` ends.
pub(super) async fn run<S: Store>(store: S, every: Duration, term: CancellationToken) {
    loop {
        loop {
            match store.rescue_expired(1_000).await {
                Ok(rescued) if rescued.len() == 1_000 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "rescuer: could not rescue expired leases");
                    break;
                }
            }
        }
        tokio::select! {
            _ = term.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
