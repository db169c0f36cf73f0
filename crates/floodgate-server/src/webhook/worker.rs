//! The delivery worker: a floodgate worker in the server process that runs jobs of kind
//! `webhook` from the `webhooks` queue through the [`Deliverer`], retrying on each
//! destination's schedule (or a receiver's `Retry-After`) and sending a job dead when the
//! schedule is used up. Each failed attempt is recorded in the job's `metadata.attempts`
//! (status, duration, the first 4 KiB of the answer, the error); a success is the job's result.
//!
//! Each `webhook` job is in its destination's group (`metadata.group`, set at enqueue by
//! [`new_job`]), so claims can leave the jobs of a destination whose breaker is open, or which
//! is disabled, where they are.

use std::sync::Arc;

use floodgate_queue::worker::{KindOptions, Worker, WorkerHandle};
use floodgate_queue::{AnyStore, Job, NewJob, Store};

use super::deliver::Deliverer;
use serde_json::Value;

use super::request::{InvalidWebhook, KIND, WebhookRequest};

/// The queue `webhook` jobs go to unless they name another.
pub const QUEUE: &str = "webhooks";

/// A `webhook` job with `payload` (checked), in the `webhooks` queue and its destination's
/// group: how the server enqueues one, and how a Rust producer using the queue directly (in
/// an outbox transaction, say) should build one.
///
/// ```
/// use floodgate_server::webhook::worker::new_job;
///
/// let job = new_job(serde_json::json!({"url": "https://hooks.example.com/x", "body": {}}))?;
/// assert_eq!(job.queue_name(), "webhooks");
/// # Ok::<(), floodgate_server::webhook::request::InvalidWebhook>(())
/// ```
pub fn new_job(payload: Value) -> Result<NewJob, InvalidWebhook> {
    let group = WebhookRequest::parse(&payload)?.destination();
    Ok(NewJob::new(KIND, payload).queue(QUEUE).group(group))
}

/// Starts delivering `webhook` jobs from [`QUEUE`] with at most `concurrency` in flight.
pub fn start(
    store: AnyStore,
    deliverer: Arc<Deliverer>,
    node: &str,
    concurrency: usize,
) -> Result<WorkerHandle, String> {
    let recorder = store.clone();
    let waiting = deliverer.clone();
    let worker = Worker::builder(store)
        .id(format!("{node}-webhooks"))
        .queues([QUEUE])
        .concurrency(concurrency.max(1))
        // A destination whose breaker is open keeps its jobs pending (disabled destinations
        // are paused groups, which the worker skips by itself).
        .skip_groups(move || waiting.waiting_destinations())
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
