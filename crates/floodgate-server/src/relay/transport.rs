//! A relay as a delivery transport: its one destination is the broker (named after the
//! relay), its message any JSON payload, and one attempt one publish awaited until the broker
//! acknowledges it. A broker that is unreachable is [`Verdict::Unavailable`] (the job waits,
//! its attempt unspent, and the relay's breaker counts it); a refusal the broker may get over
//! (a nack, an unroutable message, no stream for the subject) is [`Verdict::Retry`]; a message
//! that can never be published is [`Verdict::Permanent`].

use std::time::Duration;

use floodgate_queue::Job;
use floodgate_queue::relay::amqp::{Amqp, AmqpSettings};
use floodgate_queue::relay::jetstream::{JetStream, JetStreamSettings};
use floodgate_queue::relay::{Publisher, RelayError, SetupError, receipt};
use serde_json::{Map, Value, json};

use super::config::{Broker, RelayConfig};
use crate::delivery::Verdict;
use crate::delivery::transport::{InvalidPayload, OpenError, Policy, Sent, Transport};

/// What a relay publishes with.
#[derive(Debug)]
enum Client {
    JetStream(Box<JetStream>),
    RabbitMq(Box<Amqp>),
}

/// One relay; see the [module docs](self).
#[derive(Debug)]
pub struct RelayTransport {
    relay: String,
    /// `relay:NAME`: what tells it from other deliveries.
    id: String,
    config: RelayConfig,
    /// The longest a published job can wait before it is published again.
    republish_within: Duration,
    client: Client,
}

impl RelayTransport {
    /// Relay `name` with `config` (validated), whose crashed jobs are rescued every
    /// `rescue_interval`. Nothing is connected yet.
    pub fn new(
        name: &str,
        config: &RelayConfig,
        rescue_interval: Duration,
    ) -> Result<RelayTransport, SetupError> {
        let ack_timeout = Duration::from_secs_f64(config.ack_timeout);
        let client = match config.broker() {
            Some(Broker::RabbitMq) => Client::RabbitMq(Box::new(Amqp::new(
                name,
                AmqpSettings::new(
                    &config.url,
                    config.exchange.clone().unwrap_or_default(),
                    config.target(),
                )
                .confirm_timeout(ack_timeout),
            )?)),
            _ => {
                let mut settings =
                    JetStreamSettings::new(&config.url, config.target()).ack_timeout(ack_timeout);
                if let Some(stream) = &config.stream {
                    settings = settings.stream(stream);
                }
                Client::JetStream(Box::new(JetStream::new(name, settings)?))
            }
        };
        Ok(RelayTransport {
            relay: name.to_owned(),
            id: format!("relay:{name}"),
            config: config.clone(),
            republish_within: config.republish_within(rescue_interval),
            client,
        })
    }

    /// The relay's name.
    pub fn relay(&self) -> &str {
        &self.relay
    }

    async fn publish(&self, job: &Job) -> Result<floodgate_queue::relay::Published, RelayError> {
        match &self.client {
            Client::JetStream(c) => c.publish(job).await,
            Client::RabbitMq(c) => c.publish(job).await,
        }
    }

    fn connected(&self) -> bool {
        match &self.client {
            Client::JetStream(c) => c.connected(),
            Client::RabbitMq(c) => c.connected(),
        }
    }
}

impl Transport for RelayTransport {
    type Message = ();
    type Endpoint = ();

    fn kind(&self) -> &str {
        "relay"
    }

    fn name(&self) -> &str {
        &self.id
    }

    fn kinds(&self) -> Vec<String> {
        self.config.kinds.clone()
    }

    fn handles(&self, kind: &str) -> bool {
        self.config.kinds.iter().any(|k| k == kind)
    }

    fn queue(&self) -> &str {
        &self.config.queue
    }

    fn slots(&self) -> Option<usize> {
        Some(self.config.concurrency)
    }

    fn lease_ttl(&self) -> Option<Duration> {
        Some(self.config.lease())
    }

    fn parse(&self, _payload: &Value) -> Result<(), InvalidPayload> {
        Ok(())
    }

    fn destination(&self, _message: &()) -> String {
        self.relay.clone()
    }

    fn open(&self, _destination: &str) -> Result<(Policy, ()), OpenError> {
        let policy = Policy {
            max_concurrency: self.config.concurrency,
            // One known destination: no reason to start low; failures still halve it.
            initial_concurrency: Some(self.config.concurrency),
            rate_per_second: None,
            schedule: self.config.retry_schedule(),
            timeout: Duration::from_secs_f64(self.config.ack_timeout),
        };
        Ok((policy, ()))
    }

    async fn send(&self, _endpoint: &(), _message: &(), job: &Job) -> Sent {
        let started = std::time::Instant::now();
        let result = self.publish(job).await;
        let mut record = Map::new();
        record.insert(
            "duration_ms".to_owned(),
            json!(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
        );
        match result {
            Ok(published) => {
                if let Value::Object(receipt) = receipt(&published) {
                    record.extend(receipt);
                }
                Sent {
                    verdict: Verdict::Delivered,
                    record,
                    error: None,
                }
            }
            Err(e) => {
                let verdict = match &e {
                    RelayError::Unreachable { .. } => Verdict::Unavailable,
                    RelayError::Failed { .. } => Verdict::Retry,
                    RelayError::Refused { .. } => Verdict::Permanent,
                };
                record.insert("error".to_owned(), json!(e.to_string()));
                Sent {
                    verdict,
                    record,
                    error: Some(e.to_string()),
                }
            }
        }
    }

    async fn check(&self) -> Result<(), String> {
        match &self.client {
            Client::JetStream(c) => match c.check().await {
                Ok(stream) if stream.duplicate_window < self.republish_within => Err(format!(
                    "relays.{}.stream: stream {:?} remembers message ids for {:?}, but a job \
                     published just before a crash is published again up to {:?} later \
                     (lease_ttl + rescue_interval + the longer of breaker_wait and \
                     ack_timeout): raise the stream's duplicate_window (`nats stream edit {} \
                     --dupe-window 2m`) or lower relays.{}.lease_ttl",
                    self.relay,
                    stream.name,
                    stream.duplicate_window,
                    self.republish_within,
                    stream.name,
                    self.relay
                )),
                Ok(_) => Ok(()),
                // No stream named: nothing to check against.
                Err(SetupError::Missing { .. }) if self.config.stream.is_none() => Ok(()),
                Err(SetupError::Missing { reason, .. }) => {
                    Err(format!("relays.{}.stream: {reason}", self.relay))
                }
                Err(e) => {
                    tracing::warn!(relay = %self.relay, error = %e, "relay: the broker cannot be checked now; its jobs wait until it can be reached");
                    Ok(())
                }
            },
            Client::RabbitMq(c) => match c.check().await {
                Ok(()) => Ok(()),
                Err(SetupError::Missing { reason, .. }) => {
                    Err(format!("relays.{}.exchange: {reason}", self.relay))
                }
                Err(e) => {
                    tracing::warn!(relay = %self.relay, error = %e, "relay: the broker cannot be checked now; its jobs wait until it can be reached");
                    Ok(())
                }
            },
        }
    }

    fn unreachable(&self) -> Option<String> {
        (!self.connected()).then(|| {
            format!(
                "relay {}: broker unreachable at {}",
                self.relay,
                floodgate_queue::redact_url(&self.config.url)
            )
        })
    }
}
