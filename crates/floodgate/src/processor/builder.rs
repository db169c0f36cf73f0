//! [`ProcessorBuilder`] (the pool's settings, checked in `build`) and [`MethodOptions`] (each
//! method's protection).

use std::time::Duration;

use super::Processor;
use super::engine::Engine;
use super::error::ProcessorConfigError;
use crate::breaker::CircuitBreaker;
use crate::limiter::Limiter;

/// Builds a [`Processor`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessorBuilder {
    workers: usize,
    capacity: usize,
    name: String,
}

impl ProcessorBuilder {
    /// The defaults: 4 workers, 1,024 queued messages, named `processor`.
    pub(super) fn new() -> Self {
        ProcessorBuilder {
            workers: 4,
            capacity: 1_024,
            name: "processor".to_owned(),
        }
    }

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
        Ok(Processor {
            engine: Engine::start(self.name, self.workers, self.capacity),
        })
    }
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
