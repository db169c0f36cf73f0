//! The seam between the delivery engine and what carries a message: a [`Transport`] checks a
//! payload, names its destination, opens a destination (its [`Policy`] and whatever it keeps
//! per destination: an HTTP client, a broker connection), and sends one attempt, answering a
//! transport-neutral [`Sent`]. Everything else (limits, rate limits, breakers, disable and
//! enable, the retry schedule, attempts on the job, metrics, dashboard rows) is the engine's.
//!
//! Webhooks are the first transport (`webhook::transport`); a broker transport holds its
//! connection in its endpoint, confirms asynchronously inside `send`, and reports a broker
//! that is down as [`Verdict::Retry`] (a breaker failure).

use std::future::Future;
use std::time::Duration;

use floodgate_queue::Job;
use serde_json::{Map, Value};

use super::Verdict;
use super::schedule::RetrySchedule;

/// How the engine treats one destination.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts in flight at most (the adaptive limit never grows past it).
    pub max_concurrency: usize,
    /// Where the adaptive limit starts (default 2): a destination that may hang (any host a
    /// payload names) starts low; a known one (a relay's broker) may start at its maximum.
    pub initial_concurrency: Option<usize>,
    /// Attempts per second, if limited.
    pub rate_per_second: Option<u32>,
    /// Delays between attempts; the job goes dead after the last.
    pub schedule: RetrySchedule,
    /// How long one attempt may take: an attempt slower than this lowers the destination's
    /// adaptive limit.
    pub timeout: Duration,
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Sent {
    /// What it means.
    pub verdict: Verdict,
    /// The attempt as kept on the job: the job's result when delivered, an entry of
    /// `metadata.attempts` otherwise (the engine adds `attempt` and `error`).
    pub record: Map<String, Value>,
    /// Why it failed, for the job's error and the breaker (`None` when delivered).
    pub error: Option<String>,
}

/// A payload the transport cannot deliver, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPayload(pub String);

/// A destination that cannot be opened (its settings or its client), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {destination}: {reason}")]
pub struct OpenError {
    /// The destination.
    pub destination: String,
    /// Why.
    pub reason: String,
}

/// Carries messages of one job kind to their destinations; see the [module docs](self).
pub trait Transport: Send + Sync + 'static {
    /// A checked payload.
    type Message: Send + Sync;
    /// What it keeps per destination (a client, a connection).
    type Endpoint: Send + Sync + 'static;

    /// The job kind it delivers (`webhook`), or its label when it delivers several (`relay`).
    fn kind(&self) -> &str;

    /// What tells it from the server's other transports (default: its kind).
    fn name(&self) -> &str {
        self.kind()
    }

    /// The job kinds its worker runs (default: its kind).
    fn kinds(&self) -> Vec<String> {
        vec![self.kind().to_owned()]
    }

    /// Whether it delivers jobs of `kind` (asked on every enqueue: no allocation).
    fn handles(&self, kind: &str) -> bool {
        kind == self.kind()
    }

    /// The queue its jobs go to unless they name another.
    fn queue(&self) -> &str;

    /// Attempts in flight across destinations, when the transport chooses (default: the
    /// server's `[webhooks] concurrency`).
    fn slots(&self) -> Option<usize> {
        None
    }

    /// The lease its worker takes on each job (default: the worker's, 5 minutes).
    fn lease_ttl(&self) -> Option<Duration> {
        None
    }

    /// Checks what it sends to exists and is fit, once at start: `Err` refuses to start, with
    /// the reason; a destination that cannot be reached now is only logged (see
    /// [`unreachable`](Self::unreachable)).
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(Ok(()))
    }

    /// Why its destinations cannot be reached now, if that is so (for `/health/ready`).
    fn unreachable(&self) -> Option<String> {
        None
    }

    /// Checks a payload: at enqueue (so a bad one is refused then) and before each attempt.
    fn parse(&self, payload: &Value) -> Result<Self::Message, InvalidPayload>;

    /// The destination a message goes to: its jobs' group, and the key of its limits and
    /// breaker.
    fn destination(&self, message: &Self::Message) -> String;

    /// Opens `destination`: its policy and endpoint. Called once per destination (again after
    /// the engine forgets it).
    fn open(&self, destination: &str) -> Result<(Policy, Self::Endpoint), OpenError>;

    /// Why `message` may never go to this destination (a URL the destination's address
    /// policy refuses, say), checked before any attempt: the job goes dead with it, and no
    /// attempt is made or recorded. `None` by default.
    fn refuse(&self, endpoint: &Self::Endpoint, message: &Self::Message) -> Option<String> {
        let _ = (endpoint, message);
        None
    }

    /// Sends one attempt of `job`. Dropping the future abandons the attempt.
    fn send(
        &self,
        endpoint: &Self::Endpoint,
        message: &Self::Message,
        job: &Job,
    ) -> impl Future<Output = Sent> + Send;
}
