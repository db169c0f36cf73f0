//! The outbox relayed to RabbitMQ (AMQP 0-9-1): at least once, never lost.
//!
//! Each job is published to the relay's exchange with the routing key its [`Template`]
//! renders, persistent, with publisher confirms on and the mandatory flag set, and completed
//! only after the broker's confirm. A nack, or a message returned because nothing is bound to
//! its routing key, fails the attempt with an error that says which. The job's id is the
//! message's `message_id` (and the payload is JSON, `content_type: application/json`, with the
//! headers `floodgate-kind`, `floodgate-queue` and `floodgate-ordering-key`): a message
//! published twice (a crash between the confirm and the completion) carries the same id, and a
//! consumer that records ids in an [`Inbox`](crate::Inbox) applies its effect once.
//!
//! The connection is opened on first use and again after it drops, at most once a second;
//! meanwhile a publish answers [`RelayError::Unreachable`] at once.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_queue::relay::{Template, amqp::{Amqp, AmqpSettings}};
//!
//! let settings = AmqpSettings::new("amqp://guest:guest@127.0.0.1:5672/%2f", "orders", Template::parse("{kind}")?);
//! let rabbit = Amqp::new("orders", settings)?;
//! rabbit.check().await?; // the exchange exists
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use serde_json::json;

use super::{Published, Publisher, RelayError, SetupError, Template, body, message_id, observe};
use crate::Job;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The least time between two connection attempts.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// How an [`Amqp`] relay connects and where it publishes.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    url: String,
    exchange: String,
    routing_key: Template,
    confirm_timeout: Duration,
}

impl AmqpSettings {
    /// Publishes to `exchange` (`""`: the default exchange, where the routing key names a
    /// queue) with `routing_key` (rendered per job) on the broker at `url`
    /// (`amqp://user:password@host:5672/vhost`).
    pub fn new(
        url: impl Into<String>,
        exchange: impl Into<String>,
        routing_key: Template,
    ) -> AmqpSettings {
        AmqpSettings {
            url: url.into(),
            exchange: exchange.into(),
            routing_key,
            confirm_timeout: Duration::from_secs(5),
        }
    }

    /// How long to wait for a publish's confirm (default 5 s).
    pub fn confirm_timeout(mut self, timeout: Duration) -> AmqpSettings {
        self.confirm_timeout = timeout;
        self
    }
}

/// An open connection and its confirming channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

/// The connection, and when it was last tried.
#[derive(Default)]
struct State {
    link: Option<Arc<Link>>,
    last_try: Option<Instant>,
    last_error: Option<String>,
}

/// A RabbitMQ relay; see the [module docs](self).
pub struct Amqp {
    name: String,
    settings: AmqpSettings,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp")
            .field("name", &self.name)
            .field("url", &crate::redact_url(&self.settings.url))
            .field("exchange", &self.settings.exchange)
            .finish_non_exhaustive()
    }
}

impl Amqp {
    /// Relay `name` (not connected yet: the first publish or [`check`](Self::check) connects).
    /// A URL that does not parse is an error.
    pub fn new(name: impl Into<String>, settings: AmqpSettings) -> Result<Amqp, SetupError> {
        let name = name.into();
        settings
            .url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|reason| SetupError::Url {
                relay: name.clone(),
                url: crate::redact_url(&settings.url),
                reason,
            })?;
        Ok(Amqp {
            name,
            settings,
            state: Mutex::new(State::default()),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &AmqpSettings {
        &self.settings
    }

    /// Connects now and checks the exchange exists (a passive declare; the default exchange
    /// always does).
    pub async fn check(&self) -> Result<(), SetupError> {
        let link = self.link(true).await.map_err(|e| SetupError::Unreachable {
            relay: self.name.clone(),
            reason: e,
        })?;
        if self.settings.exchange.is_empty() {
            return Ok(());
        }
        // A failed passive declare closes its channel: a channel of its own.
        let channel =
            link.connection
                .create_channel()
                .await
                .map_err(|e| SetupError::Unreachable {
                    relay: self.name.clone(),
                    reason: e.to_string(),
                })?;
        let declared = channel
            .exchange_declare(
                ShortString::from(self.settings.exchange.clone()),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = channel.close(200, ShortString::from("checked")).await;
        declared.map_err(|e| SetupError::Missing {
            relay: self.name.clone(),
            reason: format!(
                "exchange {:?} does not exist ({e}): declare it (`rabbitmqadmin declare exchange \
                 name={} type=topic durable=true`) or name an existing one",
                self.settings.exchange, self.settings.exchange
            ),
        })
    }

    /// The open link, connecting when there is none (at most once per [`RECONNECT_EVERY`]
    /// unless `now`).
    async fn link(&self, now: bool) -> Result<Arc<Link>, String> {
        if let Some(link) = self.open_link() {
            return Ok(link);
        }
        let _one = self.connecting.lock().await;
        if let Some(link) = self.open_link() {
            return Ok(link);
        }
        {
            let state = lock(&self.state);
            if !now
                && let Some(at) = state.last_try
                && at.elapsed() < RECONNECT_EVERY
            {
                return Err(state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "reconnecting".to_owned()));
            }
        }
        lock(&self.state).last_try = Some(Instant::now());
        match tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await {
            Ok(Ok(link)) => {
                let link = Arc::new(link);
                let mut state = lock(&self.state);
                state.link = Some(link.clone());
                state.last_error = None;
                tracing::info!(relay = %self.name, "relay connected to RabbitMQ");
                Ok(link)
            }
            Ok(Err(e)) => Err(self.remember(e)),
            Err(_) => Err(self.remember(format!("no connection within {CONNECT_TIMEOUT:?}"))),
        }
    }

    fn remember(&self, error: String) -> String {
        let error = format!("{} ({error})", crate::redact_url(&self.settings.url));
        lock(&self.state).last_error = Some(error.clone());
        error
    }

    fn open_link(&self) -> Option<Arc<Link>> {
        let mut state = lock(&self.state);
        match &state.link {
            Some(link)
                if link.connection.status().connected() && link.channel.status().connected() =>
            {
                Some(link.clone())
            }
            Some(_) => {
                state.link = None;
                tracing::warn!(relay = %self.name, "relay lost its RabbitMQ connection");
                None
            }
            None => None,
        }
    }

    async fn open(&self) -> Result<Link, String> {
        let connection = Connection::connect(&self.settings.url, ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Link {
            connection,
            channel,
        })
    }

    async fn send(&self, job: &Job) -> Result<Published, RelayError> {
        let unreachable = |reason: String| RelayError::Unreachable {
            relay: self.name.clone(),
            reason,
        };
        let link = self.link(false).await.map_err(unreachable)?;
        let routing_key = self.settings.routing_key.render(job, false);
        let mut headers = FieldTable::default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s.to_owned()));
        headers.insert(ShortString::from("floodgate-kind"), text(&job.kind));
        headers.insert(ShortString::from("floodgate-queue"), text(&job.queue));
        if let Some(key) = &job.ordering_key {
            headers.insert(ShortString::from("floodgate-ordering-key"), text(key));
        }
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(message_id(job)))
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = link
            .channel
            .basic_publish(
                ShortString::from(self.settings.exchange.clone()),
                ShortString::from(routing_key.clone()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body(job),
                properties,
            )
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let confirmation = tokio::time::timeout(self.settings.confirm_timeout, confirm)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no confirm within {:?}",
                    self.settings.confirm_timeout
                ))
            })?
            .map_err(|e| unreachable(e.to_string()))?;
        let failed = |reason: String| RelayError::Failed {
            relay: self.name.clone(),
            reason,
        };
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => {
                metrics::counter!("floodgate_relay_confirms_total", "relay" => self.name.clone())
                    .increment(1);
                Ok(Published {
                    duplicate: false,
                    receipt: json!({
                        "exchange": self.settings.exchange,
                        "routing_key": routing_key,
                    }),
                })
            }
            Confirmation::Ack(Some(returned)) => Err(failed(format!(
                "returned unroutable ({} {}): nothing is bound to routing key {routing_key:?} \
                 on exchange {:?}; bind a queue, or change the relay's routing_key",
                returned.reply_code, returned.reply_text, self.settings.exchange
            ))),
            Confirmation::Nack(_) => {
                metrics::counter!("floodgate_relay_nacks_total", "relay" => self.name.clone())
                    .increment(1);
                Err(failed(format!(
                    "the broker nacked the message (exchange {:?}, routing key {routing_key:?})",
                    self.settings.exchange
                )))
            }
        }
    }
}

impl Publisher for Amqp {
    fn name(&self) -> &str {
        &self.name
    }

    fn connected(&self) -> bool {
        self.open_link().is_some()
    }

    async fn publish(&self, job: &Job) -> Result<Published, RelayError> {
        let result = self.send(job).await;
        observe(&self.name, job, &result);
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
