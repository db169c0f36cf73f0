//! Delivery: the outbox relayed to somewhere else, one job kind per target.
//!
//! A [`transport::Transport`] says how one kind's messages are carried (webhooks over HTTP
//! are the first); the generic [`engine::Engine`] does everything else, the same for every
//! target: per-destination adaptive limits, rate limits and breakers, isolation of
//! destinations from each other, disable and enable across nodes, the retry schedule, attempts
//! on the job. [`worker::start`] runs an engine's jobs in the server. The server holds its
//! engines as [`Delivery`] values in a [`Deliveries`] registry: the enqueue handler asks it to
//! check a built-in kind's payload and to name its queue and group, the dashboard reads its
//! limiters and breakers, and `serve` starts each one's worker.
//!
//! ```
//! use floodgate_server::delivery::{Deliveries, Verdict};
//!
//! let deliveries = Deliveries::default();
//! assert!(deliveries.get("webhook").is_none());
//! assert!(Verdict::Retry.is_breaker_failure());
//! ```

pub mod engine;
pub mod schedule;
pub mod transport;
mod verdict;
pub mod waiting;
pub mod worker;

use std::sync::Arc;

use floodgate::breaker::{HealthReport, RegistryEvent};
use floodgate::limiter::LimiterStats;
use floodgate_queue::worker::WorkerHandle;
use floodgate_queue::{AnyStore, PausedGroup, StoreError};
use futures_util::future::BoxFuture;
use serde_json::Value;

pub use verdict::Verdict;

use engine::{Engine, EngineError};
use transport::{InvalidPayload, Transport};

/// A delivery target as the server sees it, whatever its transport.
pub trait Delivery: Send + Sync {
    /// The job kind it delivers (its label, when it delivers several).
    fn kind(&self) -> &str;
    /// What tells it from the server's other deliveries.
    fn name(&self) -> &str;
    /// Whether it delivers jobs of `kind`.
    fn handles(&self, kind: &str) -> bool;
    /// The queue its jobs go to unless they name another.
    fn queue(&self) -> &str;
    /// Attempts in flight across destinations, when it chooses.
    fn slots(&self) -> Option<usize>;
    /// Checks its destinations once at start (`Err`: refuse to start, and why).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Why its destinations cannot be reached now, if so.
    fn unreachable(&self) -> Option<String>;
    /// Checks a payload at enqueue: the job's group (its destination), or why it cannot be
    /// delivered.
    fn group(&self, payload: &Value) -> Result<String, InvalidPayload>;
    /// Every destination's limiter.
    fn limiters(&self) -> Vec<LimiterStats>;
    /// Every destination's breaker.
    fn health(&self) -> HealthReport;
    /// Breaker state changes from now on.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RegistryEvent>;
    /// Whether `destination` is disabled, as this process last read it.
    fn is_disabled(&self, destination: &str) -> bool;
    /// The disabled destinations, read from the store.
    fn disabled(&self) -> BoxFuture<'_, Result<Vec<PausedGroup>, StoreError>>;
    /// Enables `destination` again: `true` when it was disabled.
    fn enable<'a>(&'a self, destination: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Starts its worker with `slots` attempts in flight at most.
    fn start(
        self: Arc<Self>,
        store: AnyStore,
        node: &str,
        slots: usize,
    ) -> Result<WorkerHandle, EngineError>;
}

impl<T: Transport> Delivery for Engine<T> {
    fn kind(&self) -> &str {
        self.transport().kind()
    }
    fn name(&self) -> &str {
        self.transport().name()
    }
    fn handles(&self, kind: &str) -> bool {
        self.transport().handles(kind)
    }
    fn queue(&self) -> &str {
        self.transport().queue()
    }
    fn slots(&self) -> Option<usize> {
        self.transport().slots()
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.transport().check())
    }
    fn unreachable(&self) -> Option<String> {
        self.transport().unreachable()
    }
    fn group(&self, payload: &Value) -> Result<String, InvalidPayload> {
        let message = self.transport().parse(payload)?;
        Ok(self.transport().destination(&message))
    }
    fn limiters(&self) -> Vec<LimiterStats> {
        Engine::limiters(self)
    }
    fn health(&self) -> HealthReport {
        Engine::health(self)
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RegistryEvent> {
        Engine::subscribe(self)
    }
    fn is_disabled(&self, destination: &str) -> bool {
        Engine::is_disabled(self, destination)
    }
    fn disabled(&self) -> BoxFuture<'_, Result<Vec<PausedGroup>, StoreError>> {
        Box::pin(Engine::disabled(self))
    }
    fn enable<'a>(&'a self, destination: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(Engine::enable(self, destination))
    }
    fn start(
        self: Arc<Self>,
        store: AnyStore,
        node: &str,
        slots: usize,
    ) -> Result<WorkerHandle, EngineError> {
        worker::start(self, store, node, slots)
    }
}

/// The server's delivery targets, by job kind: its built-in kinds.
#[derive(Clone, Default)]
pub struct Deliveries {
    all: Vec<Arc<dyn Delivery>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all.iter().map(|d| d.name()))
            .finish()
    }
}

impl Deliveries {
    /// Adds `delivery` (replacing one of the same name).
    pub fn with(mut self, delivery: Arc<dyn Delivery>) -> Deliveries {
        self.all.retain(|d| d.name() != delivery.name());
        self.all.push(delivery);
        self
    }

    /// The target delivering `kind`, if it is a built-in or relayed kind.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Delivery>> {
        self.all.iter().find(|d| d.handles(kind))
    }

    /// Every target.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Delivery>> {
        self.all.iter()
    }
}
