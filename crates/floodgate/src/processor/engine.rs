//! The processor's engine: a bounded shared queue, the worker tasks that drain it and the
//! handler table.
//!
//! # Implementation
//!
//! Every worker pulls from one bounded MPMC channel (`async_channel`): a worker loops on
//! `recv`, runs the message, counts it for itself in `per_worker`, and stops when the channel
//! is closed and empty. Submitting waits for room (`send`) or fails at once when the queue is
//! full (`try_send`); a shutdown flag checked first refuses submissions as soon as shutdown
//! starts, before the channel closes.
//!
//! Handlers live in a `RwLock`ed table by method name. A call clones its handler and options
//! out of the table, so no lock is held across an await and registering (or replacing) a
//! method while running only affects later calls. A call then, in order: takes a permit of the
//! method's limiter (waiting), and runs the handler's future through [`isolate`], so that a
//! panic or the method's timeout becomes an `-32603` answer and the worker survives; with a
//! breaker, the isolated call runs inside it, so panics and timeouts count as the breaker's
//! failures. The handler function itself is called inside `isolate` too, so a panic before it
//! returns its future is caught the same way. A request's answer goes back on a oneshot
//! channel; its submitter sees a dropped sender as [`ProcessorError::Cancelled`].
//!
//! Shutdown sets the flag, closes the channel (workers drain what is queued, then stop) and
//! joins the workers up to the deadline. At the deadline it aborts the workers (cancelling the
//! running messages) and drains the channel through the receiver the engine keeps for this:
//! dropping a queued request drops its reply sender, so its submitter gets `Cancelled`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::builder::MethodOptions;
use super::error::ProcessorError;
use super::message::{HandlerError, METHOD_NOT_FOUND, Notification, Request, Response};
use super::stats::{Counters, ProcessorStats, ShutdownReport};
use crate::breaker::BreakerError;
use crate::isolate::{Isolated, isolate};
use crate::sync::{Mutex, lock};

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>;

/// A registered handler, type-erased.
pub(crate) type Handler = Arc<dyn Fn(Value) -> BoxFuture + Send + Sync>;

#[derive(Clone)]
struct Method {
    handler: Handler,
    options: MethodOptions,
}

/// A queued message, with when it was submitted.
pub(crate) enum Job {
    Request(Request, oneshot::Sender<Response>, Instant),
    Notification(Notification, Instant),
}

/// The queue, the workers, the handler table and the counters of one processor.
pub(crate) struct Engine {
    pub(crate) name: String,
    capacity: usize,
    methods: RwLock<HashMap<String, Method>>,
    tx: async_channel::Sender<Job>,
    /// Kept to drop (and so cancel) whatever is still queued when the deadline passes.
    rx: async_channel::Receiver<Job>,
    shutting_down: AtomicBool,
    workers: Mutex<JoinSet<()>>,
    per_worker: Vec<AtomicU64>,
    counters: Counters,
}

impl Engine {
    /// An engine with `workers` worker tasks (spawned on the current Tokio runtime) over a
    /// queue of `capacity` messages.
    pub(crate) fn start(name: String, workers: usize, capacity: usize) -> Arc<Engine> {
        let (tx, rx) = async_channel::bounded(capacity);
        let engine = Arc::new(Engine {
            counters: Counters::new(&name),
            name,
            capacity,
            methods: RwLock::new(HashMap::new()),
            tx,
            rx: rx.clone(),
            shutting_down: AtomicBool::new(false),
            workers: Mutex::new(JoinSet::new()),
            per_worker: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        });
        {
            let mut tasks = lock(&engine.workers);
            for index in 0..workers {
                let (engine, rx) = (engine.clone(), rx.clone());
                tasks.spawn(async move {
                    while let Ok(job) = rx.recv().await {
                        engine.run(job).await;
                        engine.per_worker[index].fetch_add(1, Relaxed);
                    }
                });
            }
        }
        engine
    }

    /// Registers (or replaces) the handler of `method`.
    pub(crate) fn register(&self, method: String, handler: Handler, options: MethodOptions) {
        let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
        methods.insert(method, Method { handler, options });
    }

    /// Queues `job`, waiting for room.
    pub(crate) async fn send(&self, job: Job) -> Result<(), ProcessorError> {
        if self.shutting_down.load(Acquire) {
            return Err(self.reject(ProcessorError::ShuttingDown));
        }
        self.tx
            .send(job)
            .await
            .map_err(|_| self.reject(ProcessorError::ShuttingDown))
    }

    /// Queues `job` only if there is room now.
    pub(crate) fn try_send(&self, job: Job) -> Result<(), ProcessorError> {
        if self.shutting_down.load(Acquire) {
            return Err(self.reject(ProcessorError::ShuttingDown));
        }
        self.tx.try_send(job).map_err(|e| {
            self.reject(match e {
                async_channel::TrySendError::Full(_) => ProcessorError::QueueFull {
                    capacity: self.capacity,
                },
                async_channel::TrySendError::Closed(_) => ProcessorError::ShuttingDown,
            })
        })
    }

    fn reject(&self, e: ProcessorError) -> ProcessorError {
        self.counters.count_rejected();
        e
    }

    /// Stops accepting, drains until `deadline`, then cancels what is left.
    pub(crate) async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.shutting_down.store(true, Release);
        self.tx.close(); // workers drain what is queued, then stop
        let mut workers = std::mem::take(&mut *lock(&self.workers));
        let drained = tokio::time::timeout(deadline, async {
            while workers.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        let mut cancelled = 0;
        if !drained {
            cancelled = self.tx.len() + workers.len();
            workers.abort_all();
            while workers.join_next().await.is_some() {}
            // Dropping a queued request drops its reply channel: its submitter gets `Cancelled`.
            while self.rx.try_recv().is_ok() {}
        }
        tracing::info!(processor = %self.name, drained, cancelled, "processor shut down");
        ShutdownReport { drained, cancelled }
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> ProcessorStats {
        let queued = self.tx.len();
        let per_worker = self.per_worker.iter().map(|n| n.load(Relaxed)).collect();
        self.counters.snapshot(queued, self.capacity, per_worker)
    }

    /// Runs one message and answers it (requests only), counting it.
    async fn run(&self, job: Job) {
        let (method, params, reply, queued_at) = match job {
            Job::Request(r, tx, at) => (r.method, r.params, Some((r.id, tx)), at),
            Job::Notification(n, at) => (n.method, n.params, None, at),
        };
        let outcome = self.call(&method, params).await;
        self.counters
            .count_processed(queued_at.elapsed(), self.tx.len());
        if let Err(e) = &outcome {
            self.counters.count_failed();
            tracing::debug!(processor = %self.name, %method, error = %e, "handler failed");
        }
        if let Some((id, tx)) = reply {
            let _ = tx.send(Response::new(id, outcome));
        }
    }

    /// Looks up `method` and runs its handler under the method's protection.
    async fn call(&self, method: &str, params: Value) -> Result<Value, HandlerError> {
        // Clone the handler out: no lock is held across an await.
        let found = {
            let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
            methods.get(method).cloned()
        };
        let Some(Method { handler, options }) = found else {
            return Err(HandlerError::new(
                METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            ));
        };
        let _permit = match &options.limiter {
            Some(l) => Some(
                l.acquire_owned()
                    .await
                    .map_err(|e| HandlerError::internal(format!("{method}: {e}")))?,
            ),
            None => None,
        };
        let run = async {
            // The handler is called inside `isolate` too: a panic before it returns its
            // future is caught like one inside it.
            match isolate(async { handler(params).await }, options.timeout).await {
                Ok(result) => result,
                Err(Isolated::TimedOut(t)) => Err(HandlerError::internal(format!(
                    "{method} timed out after {t:?}"
                ))),
                Err(Isolated::Panicked(msg)) => {
                    self.counters.count_panicked();
                    tracing::error!(processor = %self.name, %method, panic = %msg, "handler panicked");
                    Err(HandlerError::internal(format!("{method} panicked: {msg}")))
                }
            }
        };
        match &options.breaker {
            None => run.await,
            Some(b) => b.call(|| run).await.map_err(|e| match e {
                BreakerError::Inner(e) => e,
                other => HandlerError::internal(other.to_string()),
            }),
        }
    }
}
