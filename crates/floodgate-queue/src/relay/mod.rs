//! The outbox relayed to a message broker: each job of a relayed kind becomes one message,
//! published with the job's id as its message id and completed only once the broker has
//! confirmed it.
//!
//! - [`jetstream`] (feature `nats`): NATS JetStream. The message id goes in `Nats-Msg-Id`, so
//!   a republish after a crash, inside the stream's duplicate window, is dropped by the server:
//!   **exactly once into the stream**.
//! - [`amqp`] (feature `rabbitmq`): RabbitMQ (AMQP 0-9-1) with publisher confirms and the
//!   mandatory flag. The job id is the message's `message_id`: **at least once, never lost**,
//!   and consumers drop repeats with an [`Inbox`](crate::Inbox).
//!
//! A [`Publisher`] publishes one job; [`handler`] turns one into a [`Worker`](crate::worker::Worker)
//! handler, so a Rust program relays its own outbox:
//!
//! ```no_run
//! # #[cfg(feature = "nats")]
//! # async fn run(store: floodgate_queue::SqliteStore) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use floodgate_queue::relay::{self, Template, jetstream::{JetStream, JetStreamSettings}};
//! use floodgate_queue::worker::{KindOptions, Worker};
//!
//! let settings = JetStreamSettings::new("nats://127.0.0.1:4222", Template::parse("orders.{kind}")?);
//! let nats = Arc::new(JetStream::new("orders", settings)?);
//! let worker = Worker::builder(store)
//!     .queues(["events"])
//!     .handler("order.created", KindOptions::new(), relay::handler(nats))
//!     .build()?
//!     .start();
//! # Ok(()) }
//! ```
//!
//! Jobs that share an ordering key are published one at a time, oldest first (the store runs
//! them so, and a failed publish keeps its place in the line). Every publisher records
//! `floodgate_relay_published_total`, `floodgate_relay_duplicates_total`,
//! `floodgate_relay_failures_total` and `floodgate_relay_latency_seconds` (enqueue to
//! confirmation), labelled by relay name.

#[cfg(feature = "rabbitmq")]
pub mod amqp;
#[cfg(feature = "nats")]
pub mod jetstream;
mod template;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Job;
use crate::worker::{JobContext, JobError, Outcome};

pub use template::{Template, TemplateError};

/// What the broker confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The broker already had a message with this id and dropped this one (JetStream inside
    /// its duplicate window).
    pub duplicate: bool,
    /// Where it landed, kept as the job's result (`{"stream": "ORDERS", "seq": 42}`).
    pub receipt: Value,
}

/// Why a publish did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The broker cannot be reached, or did not confirm in time: try again later, without
    /// counting it against the message.
    #[error("{relay}: the broker is unreachable: {reason}")]
    Unreachable {
        /// The relay.
        relay: String,
        /// Why.
        reason: String,
    },
    /// The broker answered but did not take the message (a nack, no stream for the subject,
    /// an error): worth retrying on the schedule.
    #[error("{relay}: the broker did not take the message: {reason}")]
    Failed {
        /// The relay.
        relay: String,
        /// Why.
        reason: String,
    },
    /// The message can never be published as it is (too large, unroutable with nothing bound
    /// to its routing key, an invalid subject).
    #[error("{relay}: the message cannot be published: {reason}")]
    Refused {
        /// The relay.
        relay: String,
        /// Why.
        reason: String,
    },
}

/// Why a relay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL does not parse.
    #[error("{relay}: bad URL {url:?}: {reason}")]
    Url {
        /// The relay.
        relay: String,
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The broker answered but the destination is not there.
    #[error("{relay}: {reason}")]
    Missing {
        /// The relay.
        relay: String,
        /// What is missing and how to fix it.
        reason: String,
    },
    /// The broker could not be asked.
    #[error("{relay}: the broker is unreachable: {reason}")]
    Unreachable {
        /// The relay.
        relay: String,
        /// Why.
        reason: String,
    },
}

/// Publishes one job as one message; see the [module docs](self).
pub trait Publisher: Send + Sync + 'static {
    /// The relay's name (metrics and errors).
    fn name(&self) -> &str;

    /// Whether the broker connection is up now.
    fn connected(&self) -> bool;

    /// Publishes `job` and waits for the broker's confirmation.
    ///
    /// # Cancel safety
    ///
    /// Dropped before the confirmation, the message may or may not have landed: a republish
    /// carries the same message id.
    fn publish(&self, job: &Job) -> impl Future<Output = Result<Published, RelayError>> + Send;
}

/// The message body of `job`: its payload as JSON.
pub fn body(job: &Job) -> Vec<u8> {
    serde_json::to_vec(&job.payload).unwrap_or_default()
}

/// The message id of `job`: its id, stable across attempts and crashes.
pub fn message_id(job: &Job) -> String {
    job.id.0.to_string()
}

/// Counts a publish's result in the relay metrics.
#[cfg(any(feature = "nats", feature = "rabbitmq"))]
pub(crate) fn observe(relay: &str, job: &Job, result: &Result<Published, RelayError>) {
    let name = relay.to_owned();
    match result {
        Ok(published) => {
            metrics::counter!("floodgate_relay_published_total", "relay" => name.clone())
                .increment(1);
            if published.duplicate {
                metrics::counter!("floodgate_relay_duplicates_total", "relay" => name.clone())
                    .increment(1);
            }
            let latency = (chrono::Utc::now() - job.created_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            metrics::histogram!("floodgate_relay_latency_seconds", "relay" => name)
                .record(latency.as_secs_f64());
        }
        Err(e) => {
            let reason = match e {
                RelayError::Unreachable { .. } => "unreachable",
                RelayError::Failed { .. } => "failed",
                RelayError::Refused { .. } => "refused",
            };
            metrics::counter!("floodgate_relay_failures_total", "relay" => name, "reason" => reason)
                .increment(1);
        }
    }
}

/// A [`Worker`](crate::worker::Worker) handler that publishes each job with `publisher`: done
/// with the broker's receipt as the job's result; a broker that is unreachable snoozes the
/// job for a second (no attempt spent, its place in its ordering key's line kept); a failed
/// publish retries on the kind's schedule; a refused message goes dead.
pub fn handler<P: Publisher>(
    publisher: Arc<P>,
) -> impl Fn(
    Job,
    JobContext,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Outcome, JobError>> + Send>>
+ Send
+ Sync
+ 'static {
    move |job: Job, _ctx: JobContext| {
        let publisher = publisher.clone();
        Box::pin(async move {
            match publisher.publish(&job).await {
                Ok(published) => Ok(Outcome::with_result(receipt(&published))),
                Err(e @ RelayError::Unreachable { .. }) => {
                    tracing::debug!(job = %job.id, error = %e, "relay: broker unreachable");
                    Err(JobError::snooze(Duration::from_secs(1)))
                }
                Err(e @ RelayError::Failed { .. }) => Err(JobError::retry(e)),
                Err(e @ RelayError::Refused { .. }) => Err(JobError::permanent(e)),
            }
        })
    }
}

/// The job result for a confirmed publish.
pub fn receipt(published: &Published) -> Value {
    let mut receipt = published.receipt.clone();
    if let Some(map) = receipt.as_object_mut() {
        map.insert("duplicate".to_owned(), json!(published.duplicate));
    }
    receipt
}
