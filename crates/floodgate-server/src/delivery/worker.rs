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
    let transport = engine.transport();
    let name = transport.name().to_owned();
    let slots = transport.slots().unwrap_or(slots);
    engine.set_slots(slots);
    let waiting = engine.clone();
    let mut builder = Worker::builder(store.clone())
        .id(format!("{node}-{}s", name.replace(':', "-")))
        .queues([transport.queue()])
        .concurrency(slots.max(1))
        // Destinations that must wait keep their jobs pending (disabled destinations are
        // paused groups, which the worker skips by itself).
        .skip_groups(move || waiting.waiting_destinations());
    if let Some(ttl) = transport.lease_ttl() {
        builder = builder.lease_ttl(ttl);
    }
    for kind in transport.kinds() {
        let (engine, store) = (engine.clone(), store.clone());
        builder = builder.handler(kind, KindOptions::new(), move |job: Job, _ctx| {
            let (engine, store) = (engine.clone(), store.clone());
            async move {
                let (outcome, failed) = engine.deliver(&job).await;
                if let (Some(attempt), Some(lease)) = (failed, job.lease())
                    && let Err(e) = store.record_attempt(lease, attempt).await
                {
                    tracing::warn!(job = %job.id, error = %e, "attempt not recorded");
                }
                outcome
            }
        });
    }
    let worker = builder.build().map_err(|e| EngineError::Worker {
        kind: name,
        reason: e.to_string(),
    })?;
    Ok(worker.start())
}
