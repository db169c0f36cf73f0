//! An in-memory worker pool for JSON-RPC 2.0 shaped messages: [`Processor`].
//!
//! Handlers are registered by method name (also while running); [`Processor::submit`] sends a
//! [`Request`] and waits for its [`Response`], [`Processor::notify`] sends a [`Notification`]
//! and returns once it is queued. The queue is bounded: `try_submit` / `try_notify` never
//! wait and fail with [`ProcessorError::QueueFull`] at once. Unknown methods answer `-32601`,
//! bad params `-32602`, failures inside handlers (errors, panics, timeouts) are isolated: the
//! worker survives and the caller gets an error response. Methods can run under their own
//! [`Limiter`](crate::Limiter), [`CircuitBreaker`](crate::breaker::CircuitBreaker) and timeout.
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
//!
//! The engine and its invariants are described in `engine.rs`.

mod builder;
mod engine;
mod error;
mod message;
mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use builder::{MethodOptions, ProcessorBuilder};
pub use error::{ProcessorConfigError, ProcessorError};
pub use message::{
    HandlerError, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Notification, Request, Response,
};
pub use stats::{ProcessorStats, ShutdownReport};

use engine::{Engine, Handler, Job};

/// An in-memory worker pool; see the [module docs](self). Clones share it.
#[derive(Clone)]
pub struct Processor {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("name", &self.engine.name)
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
        ProcessorBuilder::new()
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
        self.engine.register(method.into(), handler, options);
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
        self.engine
            .send(Job::Request(request, tx, Instant::now()))
            .await?;
        Pending(rx).await
    }

    /// Queues `request` only if there is room now; the returned [`Pending`] resolves to its
    /// response.
    pub fn try_submit(&self, request: Request) -> Result<Pending, ProcessorError> {
        let (tx, rx) = oneshot::channel();
        self.engine
            .try_send(Job::Request(request, tx, Instant::now()))?;
        Ok(Pending(rx))
    }

    /// Queues `notification`, waiting for room; returns once it is accepted.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it returns queues nothing; once it has
    /// returned `Ok`, the notification is queued and runs.
    pub async fn notify(&self, notification: Notification) -> Result<(), ProcessorError> {
        self.engine
            .send(Job::Notification(notification, Instant::now()))
            .await
    }

    /// Queues `notification` only if there is room now.
    pub fn try_notify(&self, notification: Notification) -> Result<(), ProcessorError> {
        self.engine
            .try_send(Job::Notification(notification, Instant::now()))
    }

    /// Stops accepting (later submissions fail with `ShuttingDown`), lets queued and running
    /// messages finish until `deadline`, then cancels what is left (their submitters get
    /// [`ProcessorError::Cancelled`]) and reports.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. The first poll stops accepting for good and takes the workers over.
    /// Dropping the future before it returns aborts the workers at once (the running messages
    /// are cancelled) but leaves the queue as it is: messages still queued are answered
    /// `Cancelled` only when the last handle to the processor is dropped, and a later
    /// `shutdown`, finding no workers, reports `drained`.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.engine.shutdown(deadline).await
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProcessorStats {
        self.engine.stats()
    }
}
