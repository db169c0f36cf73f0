//! The delivery worker: a floodgate worker in the server process that runs jobs of kind
//! `webhook` from the `webhooks` queue through the [`Deliverer`], retrying on each
//! destination's schedule (or a receiver's `Retry-After`) and sending a job dead when the
//! schedule is used up. Each failed attempt is recorded in the job's `metadata.attempts`
//! (status, duration, the first 4 KiB of the answer, the error); a success is the job's result.

use std::sync::Arc;

use floodgate_queue::worker::{KindOptions, Worker, WorkerHandle};
use floodgate_queue::{AnyStore, Job, Store};

use super::deliver::Deliverer;
use super::request::KIND;

/// The queue `webhook` jobs go to unless they name another.
pub const QUEUE: &str = "webhooks";

/// Starts delivering `webhook` jobs from [`QUEUE`] with at most `concurrency` in flight.
pub fn start(
    store: AnyStore,
    deliverer: Arc<Deliverer>,
    node: &str,
    concurrency: usize,
) -> Result<WorkerHandle, String> {
    let recorder = store.clone();
    let worker = Worker::builder(store)
        .id(format!("{node}-webhooks"))
        .queues([QUEUE])
        .concurrency(concurrency.max(1))
        .handler(KIND, KindOptions::new(), move |job: Job, _ctx| {
            let (deliverer, store) = (deliverer.clone(), recorder.clone());
            async move {
                let (outcome, failed) = deliverer.deliver(&job).await;
                // Every failed attempt is kept on the job (`metadata.attempts`); a success is
                // the job's result.
                if let (Some(attempt), Some(lease)) = (failed, job.lease())
                    && let Err(e) = store.record_attempt(lease, attempt).await
                {
                    tracing::warn!(job = %job.id, error = %e, "attempt not recorded");
                }
                outcome
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    Ok(worker.start())
}
