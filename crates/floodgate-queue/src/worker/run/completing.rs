//! Successes written in batches: one `complete_many` for every success waiting at that
//! moment, retried on database errors.

use super::*;

/// Records a success through the completion batcher (one `complete_many` for every success
/// waiting at that moment), or directly once the batcher is gone.
pub(super) async fn complete<S: Store>(
    store: &S,
    shared: &Shared,
    lease: Lease,
    result: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    let sender = lock(&shared.completer).clone();
    let Some(sender) = sender else {
        return store.complete(lease, result).await;
    };
    let (reply, answer) = oneshot::channel();
    if sender.send((Completion { lease, result }, reply)).is_err() {
        return Err(StoreError::Corrupt("the completion batcher stopped".into()));
    }
    match answer.await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err(StoreError::LeaseLost { id: lease.id }),
        Ok(Err(e)) => Err(StoreError::Corrupt(format!("batch completion failed: {e}"))),
        Err(_) => Err(StoreError::Corrupt("the completion batcher stopped".into())),
    }
}

/// Batches written at once: while one waits on the database (its round trip and commit),
/// the next gathers and goes.
const IN_FLIGHT: usize = 2;

/// Writes successes in batches: whatever is waiting when a batch can go (fewer than
/// [`IN_FLIGHT`] are being written), up to 500, in one statement. No timer: an idle worker's
/// lone success is written at once.
pub(super) async fn complete_batches<S: Store>(
    store: S,
    worker_id: Arc<str>,
    mut requests: mpsc::UnboundedReceiver<CompleteRequest>,
) {
    use futures_util::StreamExt;
    let mut writing = futures_util::stream::FuturesUnordered::new();
    let mut open = true;
    while open || !writing.is_empty() {
        tokio::select! {
            first = requests.recv(), if open && writing.len() < IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut batch = vec![first];
                while batch.len() < 500 {
                    match requests.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                writing.push(write_batch(&store, &worker_id, batch));
            }
            Some(()) = writing.next(), if !writing.is_empty() => {}
        }
    }
}

/// Writes one batch and answers each of its requests.
async fn write_batch<S: Store>(store: &S, worker_id: &str, batch: Vec<CompleteRequest>) {
    let completions: Vec<Completion> = batch.iter().map(|(c, _)| c.clone()).collect();
    match complete_with_retries(store, worker_id, completions).await {
        Ok(lost) => {
            for (c, reply) in batch {
                let _ = reply.send(Ok(lost.contains(&c.lease.id)));
            }
        }
        Err(e) => {
            let e = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// `complete_many`, tried again on a database error (a connection the server dropped fails
/// once, then the pool opens another). A retry cannot tell a job it completed itself in an
/// attempt whose answer was lost from one whose lease was lost, so after a retry the jobs it
/// calls lost are looked up: those `succeeded` with this worker as the last lease owner count
/// as done.
async fn complete_with_retries<S: Store>(
    store: &S,
    worker_id: &str,
    completions: Vec<Completion>,
) -> Result<Vec<JobId>, StoreError> {
    let mut delay = Duration::from_millis(20);
    let mut retried = false;
    loop {
        match store.complete_many(completions.clone()).await {
            Ok(lost) if !retried || lost.is_empty() => return Ok(lost),
            Ok(lost) => {
                let mut really_lost = Vec::with_capacity(lost.len());
                for id in lost {
                    let done = store.job(id).await?.is_some_and(|j| {
                        j.state == JobState::Succeeded
                            && j.lease_owner.as_deref() == Some(worker_id)
                    });
                    if !done {
                        really_lost.push(id);
                    }
                }
                return Ok(really_lost);
            }
            Err(StoreError::Database(e)) if delay <= Duration::from_millis(640) => {
                tracing::warn!(error = %e, retry_in = ?delay, "completion batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}
