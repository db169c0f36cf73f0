//! The delivery worker: a floodgate worker in the server process that runs one transport's
//! jobs from its queue through the [`Engine`], leaving the jobs of destinations that must wait
//! (open breaker, disabled, at their limit) pending. Each failed attempt is recorded in the
//! job's `metadata.attempts`; a success is the job's result.

use std::sync::Arc;

use floodgate_queue::worker::{KindOptions, Worker, WorkerHandle};
use floodgate_queue::{Job, Store};

use super::engine::{Engine, EngineError};
use super::transport::Transport;

/// Starts delivering `engine`'s kind from its transport's queue with at most `slots`
/// attempts in flight, as worker `{node}-{kind}s`.
pub fn start<T: Transport>(
    engine: Arc<Engine<T>>,
    store: floodgate_queue::AnyStore,
    node: &str,
    slots: usize,
) -> Result<WorkerHandle, EngineError> {
    let kind = engine.transport().kind();
    engine.set_slots(slots);
    let recorder = store.clone();
    let waiting = engine.clone();
    let worker = Worker::builder(store)
        .id(format!("{node}-{kind}s"))
        .queues([engine.transport().queue()])
        .concurrency(slots.max(1))
        // Destinations that must wait keep their jobs pending (disabled destinations are
        // paused groups, which the worker skips by itself).
        .skip_groups(move || waiting.waiting_destinations())
        .handler(kind, KindOptions::new(), move |job: Job, _ctx| {
            let (engine, store) = (engine.clone(), recorder.clone());
            async move {
                let (outcome, failed) = engine.deliver(&job).await;
                if let (Some(attempt), Some(lease)) = (failed, job.lease())
                    && let Err(e) = store.record_attempt(lease, attempt).await
                {
                    tracing::warn!(job = %job.id, error = %e, "attempt not recorded");
                }
                outcome
            }
        })
        .build()
        .map_err(|e| EngineError::Worker {
            kind,
            reason: e.to_string(),
        })?;
    Ok(worker.start())
}
