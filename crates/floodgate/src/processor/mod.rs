//! An in-memory worker pool for JSON-RPC 2.0 shaped messages: [`Processor`].
//!
//! Handlers are registered by method name (also while running); [`Processor::submit`] sends a
//! [`Request`] and waits for its [`Response`], [`Processor::notify`] sends a [`Notification`]
//! and returns once it is queued. The queue is bounded: `try_submit` / `try_notify` never
//! wait and fail with [`ProcessorError::QueueFull`] at once. Unknown methods answer `-32601`,
//! bad params `-32602`, failures inside handlers (errors, panics, timeouts) are isolated: the
//! worker survives and the caller gets an error response. Methods can run under their own
//! [`Limiter`], [`CircuitBreaker`] and timeout.
//!
//! **Dispatch.** All workers pull from one shared bounded queue (an MPMC channel). The
//! alternative, a bounded queue per worker with least-loaded dispatch, was measured beside it
//! (`benches/processor.rs`, figures in `BENCHMARKS.md`). With no-op messages per-worker queues
//! are 5-15% faster (less contention on one queue); with one message in 16 taking 1 ms the
//! shared queue moves 1.5x (2 workers) to 2x (4 workers) as many messages, because an idle
//! worker always takes the next message while per-worker queues leave messages stuck behind a
//! slow one. Real handlers vary, so the shared queue it is; it also keeps a single capacity for
//! backpressure. Per-worker figures in [`ProcessorStats::per_worker`] count what each worker
//! processed (with one queue there is no per-worker depth).
//!
//! ```
//! use floodgate::processor::{HandlerError, Processor, Request};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let processor = Processor::builder().workers(2).queue_capacity(100).build().unwrap();
//! processor.register("add", |params| async move {
//!     let (a, b) = (params[0].as_i64(), params[1].as_i64());
//!     match (a, b) {
//!         (Some(a), Some(b)) => Ok(json!(a + b)),
//!         _ => Err(HandlerError::invalid_params("expected [a, b] as integers")),
//!     }
//! });
//! let response = processor
//!     .submit(Request { id: json!(1), method: "add".into(), params: json!([2, 3]) })
//!     .await
//!     .unwrap();
//! assert_eq!(response.into_result().unwrap(), json!(5));
//! processor.shutdown(std::time::Duration::from_secs(1)).await;
//! # }
//! ```

mod message;

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

pub use message::{
    HandlerError, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Notification, Request, Response,
};

use crate::breaker::{BreakerError, CircuitBreaker};
use crate::histogram::LogHistogram;
use crate::isolate::{Isolated, isolate};
use crate::limiter::Limiter;
use crate::sync::{Mutex, lock};

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>;
type Handler = Arc<dyn Fn(Value) -> BoxFuture + Send + Sync>;

/// Why a message was not accepted or not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The queue holds `capacity` messages; shed load or retry later.
    #[error("processor queue is full ({capacity} messages)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The processor is shutting down and accepts nothing new.
    #[error("processor is shutting down")]
    ShuttingDown,
    /// The message was accepted but cancelled by shutdown before it ran.
    #[error("cancelled by shutdown before it ran")]
    Cancelled,
}

/// Invalid processor settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorConfigError {
    /// Zero workers or zero capacity.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Per-method protection.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MethodOptions {
    /// Each call holds a permit of this limiter while it runs.
    pub limiter: Option<Limiter>,
    /// Calls go through this breaker (open: answered with `-32603` at once).
    pub breaker: Option<CircuitBreaker>,
    /// A call running longer is cancelled and answered with `-32603`.
    pub timeout: Option<Duration>,
}

impl MethodOptions {
    /// No protection.
    pub fn new() -> Self {
        MethodOptions::default()
    }

    /// Run under `limiter`.
    pub fn limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Run through `breaker`.
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Cancel calls slower than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

#[derive(Clone)]
struct Method {
    handler: Handler,
    options: MethodOptions,
}

enum Job {
    Request(Request, oneshot::Sender<Response>, Instant),
    Notification(Notification, Instant),
}

struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    rejected: AtomicU64,
    latency: LogHistogram,
    metrics: Metrics,
}

/// `floodgate_processor_*{processor="name"}` handles.
struct Metrics {
    processed: metrics::Counter,
    failed: metrics::Counter,
    panicked: metrics::Counter,
    rejected: metrics::Counter,
    queued: metrics::Gauge,
    latency: metrics::Histogram,
}

impl Counters {
    fn new(name: &str) -> Self {
        let l = || name.to_owned();
        Counters {
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            latency: LogHistogram::default(),
            metrics: Metrics {
                processed: metrics::counter!("floodgate_processor_processed_total", "processor" => l()),
                failed: metrics::counter!("floodgate_processor_failed_total", "processor" => l()),
                panicked: metrics::counter!("floodgate_processor_panicked_total", "processor" => l()),
                rejected: metrics::counter!("floodgate_processor_rejected_total", "processor" => l()),
                queued: metrics::gauge!("floodgate_processor_queued", "processor" => l()),
                latency: metrics::histogram!("floodgate_processor_latency_seconds", "processor" => l()),
            },
        }
    }
}

struct Inner {
    name: String,
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

/// Counters and gauges of a [`Processor`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Messages waiting in the shared queue.
    pub queued: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Messages each worker has processed (shows how evenly load spreads).
    pub per_worker: Vec<u64>,
    /// Messages processed.
    pub processed: u64,
    /// Of those, answered with an error (including panics and timeouts).
    pub failed: u64,
    /// Of those, handler panics.
    pub panicked: u64,
    /// Submissions refused (queue full or shutting down).
    pub rejected: u64,
    /// Median time from submission to the end of the handler.
    pub latency_p50: Duration,
    /// 99th percentile of the same.
    pub latency_p99: Duration,
}

/// What [`Processor::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether queued and running messages all finished before the deadline.
    pub drained: bool,
    /// Messages cancelled at the deadline (still queued or running).
    pub cancelled: usize,
}

/// Builds a [`Processor`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessorBuilder {
    workers: usize,
    capacity: usize,
    name: String,
}

impl ProcessorBuilder {
    /// Worker tasks (default 4).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Messages the queue holds (default 1,024).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Name for metrics and logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the workers (on the current Tokio runtime).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn build(self) -> Result<Processor, ProcessorConfigError> {
        if self.workers == 0 {
            return Err(ProcessorConfigError::Zero("workers"));
        }
        if self.capacity == 0 {
            return Err(ProcessorConfigError::Zero("queue_capacity"));
        }
        let (tx, rx) = async_channel::bounded(self.capacity);
        let inner = Arc::new(Inner {
            counters: Counters::new(&self.name),
            name: self.name,
            capacity: self.capacity,
            methods: RwLock::new(HashMap::new()),
            tx,
            rx: rx.clone(),
            shutting_down: AtomicBool::new(false),
            workers: Mutex::new(JoinSet::new()),
            per_worker: (0..self.workers).map(|_| AtomicU64::new(0)).collect(),
        });
        {
            let mut workers = lock(&inner.workers);
            for index in 0..self.workers {
                let (inner, rx) = (inner.clone(), rx.clone());
                workers.spawn(async move {
                    while let Ok(job) = rx.recv().await {
                        inner.run(job).await;
                        inner.per_worker[index].fetch_add(1, Relaxed);
                    }
                });
            }
        }
        Ok(Processor { inner })
    }
}

/// An in-memory worker pool; see the [module docs](self). Clones share it.
#[derive(Clone)]
pub struct Processor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// The response to an accepted request.
pub struct Pending(oneshot::Receiver<Response>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Future for Pending {
    type Output = Result<Response, ProcessorError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| ProcessorError::Cancelled))
    }
}

impl Processor {
    /// Starts building a processor.
    pub fn builder() -> ProcessorBuilder {
        ProcessorBuilder {
            workers: 4,
            capacity: 1_024,
            name: "processor".to_owned(),
        }
    }

    /// Registers (or replaces) the handler of `method`.
    pub fn register<F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.register_with(method, MethodOptions::default(), handler);
    }

    /// Registers a handler that runs under `options`.
    pub fn register_with<F, Fut>(
        &self,
        method: impl Into<String>,
        options: MethodOptions,
        handler: F,
    ) where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |params| Box::pin(handler(params)));
        let mut methods = self
            .inner
            .methods
            .write()
            .unwrap_or_else(|p| p.into_inner());
        methods.insert(method.into(), Method { handler, options });
    }

    /// Registers a handler with typed params and result: params that don't deserialize into
    /// `P` are answered with `-32602` and the reason.
    pub fn register_typed<P, R, F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        P: serde::de::DeserializeOwned + Send + 'static,
        R: serde::Serialize + Send + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.register(method, move |params: Value| {
            let handler = handler.clone();
            async move {
                let p: P = serde_json::from_value(params)
                    .map_err(|e| HandlerError::invalid_params(e.to_string()))?;
                let r = handler(p).await?;
                serde_json::to_value(r)
                    .map_err(|e| HandlerError::internal(format!("result not serialisable: {e}")))
            }
        });
    }

    /// Queues `request`, waiting for room, and waits for its response.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the request is queued queues nothing; after, the request
    /// still runs and its response is discarded.
    pub async fn submit(&self, request: Request) -> Result<Response, ProcessorError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Request(request, tx, Instant::now())).await?;
        Pending(rx).await
    }

    /// Queues `request` only if there is room now; the returned [`Pending`] resolves to its
    /// response.
    pub fn try_submit(&self, request: Request) -> Result<Pending, ProcessorError> {
        let (tx, rx) = oneshot::channel();
        self.try_send(Job::Request(request, tx, Instant::now()))?;
        Ok(Pending(rx))
    }

    /// Queues `notification`, waiting for room; returns once it is accepted.
    pub async fn notify(&self, notification: Notification) -> Result<(), ProcessorError> {
        self.send(Job::Notification(notification, Instant::now()))
            .await
    }

    /// Queues `notification` only if there is room now.
    pub fn try_notify(&self, notification: Notification) -> Result<(), ProcessorError> {
        self.try_send(Job::Notification(notification, Instant::now()))
    }

    async fn send(&self, job: Job) -> Result<(), ProcessorError> {
        if self.inner.shutting_down.load(Acquire) {
            return Err(self.inner.reject(ProcessorError::ShuttingDown));
        }
        self.inner
            .tx
            .send(job)
            .await
            .map_err(|_| self.inner.reject(ProcessorError::ShuttingDown))
    }

    fn try_send(&self, job: Job) -> Result<(), ProcessorError> {
        if self.inner.shutting_down.load(Acquire) {
            return Err(self.inner.reject(ProcessorError::ShuttingDown));
        }
        self.inner.tx.try_send(job).map_err(|e| {
            self.inner.reject(match e {
                async_channel::TrySendError::Full(_) => ProcessorError::QueueFull {
                    capacity: self.inner.capacity,
                },
                async_channel::TrySendError::Closed(_) => ProcessorError::ShuttingDown,
            })
        })
    }

    /// Stops accepting (later submissions fail with `ShuttingDown`), lets queued and running
    /// messages finish until `deadline`, then cancels what is left (their submitters get
    /// [`ProcessorError::Cancelled`]) and reports.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let inner = &self.inner;
        inner.shutting_down.store(true, Release);
        inner.tx.close(); // workers drain what is queued, then stop
        let mut workers = std::mem::take(&mut *lock(&inner.workers));
        let drained = tokio::time::timeout(deadline, async {
            while workers.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        let mut cancelled = 0;
        if !drained {
            cancelled = inner.tx.len() + workers.len();
            workers.abort_all();
            while workers.join_next().await.is_some() {}
            // Dropping a queued request drops its reply channel: its submitter gets `Cancelled`.
            while inner.rx.try_recv().is_ok() {}
        }
        tracing::info!(processor = %inner.name, drained, cancelled, "processor shut down");
        ShutdownReport { drained, cancelled }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProcessorStats {
        let c = &self.inner.counters;
        ProcessorStats {
            queued: self.inner.tx.len(),
            capacity: self.inner.capacity,
            per_worker: self
                .inner
                .per_worker
                .iter()
                .map(|n| n.load(Relaxed))
                .collect(),
            processed: c.processed.load(Relaxed),
            failed: c.failed.load(Relaxed),
            panicked: c.panicked.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            latency_p50: c.latency.quantile(0.5, 0).unwrap_or_default(),
            latency_p99: c.latency.quantile(0.99, 0).unwrap_or_default(),
        }
    }
}

impl Inner {
    fn reject(&self, e: ProcessorError) -> ProcessorError {
        self.counters.rejected.fetch_add(1, Relaxed);
        self.counters.metrics.rejected.increment(1);
        e
    }

    async fn run(&self, job: Job) {
        let (method, params, reply, queued_at) = match job {
            Job::Request(r, tx, at) => (r.method, r.params, Some((r.id, tx)), at),
            Job::Notification(n, at) => (n.method, n.params, None, at),
        };
        let outcome = self.call(&method, params).await;
        let c = &self.counters;
        let latency = queued_at.elapsed();
        c.processed.fetch_add(1, Relaxed);
        c.latency.record(latency);
        c.metrics.processed.increment(1);
        c.metrics.latency.record(latency.as_secs_f64());
        c.metrics.queued.set(self.tx.len() as f64);
        if let Err(e) = &outcome {
            c.failed.fetch_add(1, Relaxed);
            c.metrics.failed.increment(1);
            tracing::debug!(processor = %self.name, %method, error = %e, "handler failed");
        }
        if let Some((id, tx)) = reply {
            let _ = tx.send(Response::new(id, outcome));
        }
    }

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
            match isolate(handler(params), options.timeout).await {
                Ok(result) => result,
                Err(Isolated::TimedOut(t)) => Err(HandlerError::internal(format!(
                    "{method} timed out after {t:?}"
                ))),
                Err(Isolated::Panicked(msg)) => {
                    self.counters.panicked.fetch_add(1, Relaxed);
                    self.counters.metrics.panicked.increment(1);
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
