//! The outbox relayed to NATS JetStream, exactly once into the stream.
//!
//! Each job is published to the subject its [`Template`] renders, with `Nats-Msg-Id` set to
//! the job's id, and completed only after the stream's acknowledgement. A job published but
//! not completed (the relay crashed, the acknowledgement was lost) is published again with
//! the same id, and the stream drops the repeat **if it comes within the stream's duplicate
//! window** (`duplicate_window`, 2 minutes by default). So the window must be longer than the
//! longest time a published job can wait before it is published again: its lease (plus the
//! rescue interval) after a crash, and the longest retry delay after a lost acknowledgement.
//! [`JetStream::check`] reads the window so a caller can refuse a stream whose window is too
//! short. The acknowledgement's duplicate flag is counted in
//! `floodgate_relay_duplicates_total`.
//!
//! Each message carries the job's payload as JSON, `Content-Type: application/json`, and the
//! headers `Floodgate-Kind`, `Floodgate-Queue` and, when set, `Floodgate-Ordering-Key`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_queue::relay::{Template, jetstream::{JetStream, JetStreamSettings}};
//!
//! let settings = JetStreamSettings::new("nats://127.0.0.1:4222", Template::parse("orders.{kind}")?)
//!     .stream("ORDERS");
//! let nats = JetStream::new("orders", settings)?;
//! let stream = nats.check().await?;
//! assert!(stream.duplicate_window >= std::time::Duration::from_secs(60));
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{ConnectOptions, HeaderMap};
use serde_json::json;

use super::{Published, Publisher, RelayError, SetupError, Template, body, message_id, observe};
use crate::Job;

/// How a [`JetStream`] relay connects and where it publishes.
#[derive(Debug, Clone)]
pub struct JetStreamSettings {
    url: String,
    subject: Template,
    stream: Option<String>,
    ack_timeout: Duration,
}

impl JetStreamSettings {
    /// Publishes to `subject` (rendered per job) on the server at `url` (`nats://host:port`,
    /// `nats://user:password@host:port`, several comma-separated).
    pub fn new(url: impl Into<String>, subject: Template) -> JetStreamSettings {
        JetStreamSettings {
            url: url.into(),
            subject,
            stream: None,
            ack_timeout: Duration::from_secs(5),
        }
    }

    /// The stream expected to capture the subjects, read by [`JetStream::check`].
    pub fn stream(mut self, name: impl Into<String>) -> JetStreamSettings {
        self.stream = Some(name.into());
        self
    }

    /// How long to wait for a publish's acknowledgement (default 5 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> JetStreamSettings {
        self.ack_timeout = timeout;
        self
    }
}

/// What [`JetStream::check`] read of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    /// The stream's name.
    pub name: String,
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// How long it remembers message ids.
    pub duplicate_window: Duration,
}

/// A JetStream relay; see the [module docs](self).
#[derive(Debug)]
pub struct JetStream {
    name: String,
    settings: JetStreamSettings,
    link: tokio::sync::OnceCell<(async_nats::Client, async_nats::jetstream::Context)>,
}

impl JetStream {
    /// Relay `name`, connected on first use; only a URL that does not parse is an error. A
    /// server that is down is connected to in the background, and reconnected to whenever the
    /// connection drops.
    pub fn new(
        name: impl Into<String>,
        settings: JetStreamSettings,
    ) -> Result<JetStream, SetupError> {
        let name = name.into();
        for part in settings.url.split(',') {
            part.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| SetupError::Url {
                    relay: name.clone(),
                    url: crate::redact_url(&settings.url),
                    reason: format!(
                        "{e}; write nats://host:4222 (or nats://user:password@host:4222)"
                    ),
                })?;
        }
        Ok(JetStream {
            name,
            settings,
            link: tokio::sync::OnceCell::new(),
        })
    }

    /// The client, connecting (in the background) on first use.
    async fn link(&self) -> Result<&(async_nats::Client, async_nats::jetstream::Context), String> {
        self.link
            .get_or_try_init(|| async {
                let client = ConnectOptions::new()
                    .name(format!("floodgate relay {}", self.name))
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .connection_timeout(Duration::from_secs(2))
                    .connect(self.settings.url.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut context = async_nats::jetstream::new(client.clone());
                context.set_timeout(self.settings.ack_timeout);
                Ok((client, context))
            })
            .await
    }

    /// The settings.
    pub fn settings(&self) -> &JetStreamSettings {
        &self.settings
    }

    /// Reads the configured stream: that it exists, what it captures, its duplicate window.
    pub async fn check(&self) -> Result<StreamCheck, SetupError> {
        let Some(stream) = &self.settings.stream else {
            return Err(SetupError::Missing {
                relay: self.name.clone(),
                reason: "no stream is configured to check".to_owned(),
            });
        };
        let (_, context) = self
            .link()
            .await
            .map_err(|reason| SetupError::Unreachable {
                relay: self.name.clone(),
                reason,
            })?;
        match context.get_stream(stream).await {
            Ok(found) => {
                let config = &found.cached_info().config;
                Ok(StreamCheck {
                    name: config.name.clone(),
                    subjects: config.subjects.clone(),
                    duplicate_window: config.duplicate_window,
                })
            }
            Err(e) => {
                use async_nats::jetstream::context::GetStreamErrorKind as K;
                match e.kind() {
                    K::JetStream(_) | K::InvalidStreamName | K::EmptyName => {
                        Err(SetupError::Missing {
                            relay: self.name.clone(),
                            reason: format!(
                                "stream {stream:?} does not exist ({e}): create it (`nats stream add \
                                 {stream} --subjects '…'`) or name an existing one"
                            ),
                        })
                    }
                    K::Request => Err(SetupError::Unreachable {
                        relay: self.name.clone(),
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }

    async fn send(&self, job: &Job) -> Result<Published, RelayError> {
        let unreachable = |reason: String| RelayError::Unreachable {
            relay: self.name.clone(),
            reason,
        };
        let (client, context) = self.link().await.map_err(unreachable)?;
        if client.connection_state() != State::Connected {
            return Err(unreachable(format!(
                "not connected to {} (reconnecting)",
                crate::redact_url(&self.settings.url)
            )));
        }
        let subject = self.settings.subject.render(job, true);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id(job).as_str());
        headers.insert("Content-Type", "application/json");
        headers.insert("Floodgate-Kind", job.kind.as_str());
        headers.insert("Floodgate-Queue", job.queue.as_str());
        if let Some(key) = &job.ordering_key {
            headers.insert("Floodgate-Ordering-Key", key.as_str());
        }
        let failed = |kind: PublishErrorKind, e: String| match kind {
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => unreachable(e),
            PublishErrorKind::MaxPayloadExceeded => RelayError::Refused {
                relay: self.name.clone(),
                reason: e,
            },
            PublishErrorKind::StreamNotFound => RelayError::Failed {
                relay: self.name.clone(),
                reason: format!(
                    "no stream captures subject {subject:?}: add it to a stream's subjects, or \
                     change the relay's subject"
                ),
            },
            _ => RelayError::Failed {
                relay: self.name.clone(),
                reason: format!("{e} (subject {subject:?})"),
            },
        };
        let ack = context
            .publish_with_headers(subject.clone(), headers, body(job).into())
            .await
            .map_err(|e| failed(e.kind(), e.to_string()))?;
        let ack = ack.await.map_err(|e| failed(e.kind(), e.to_string()))?;
        Ok(Published {
            duplicate: ack.duplicate,
            receipt: json!({"stream": ack.stream, "seq": ack.sequence}),
        })
    }
}

impl Publisher for JetStream {
    fn name(&self) -> &str {
        &self.name
    }

    fn connected(&self) -> bool {
        self.link
            .get()
            .is_some_and(|(client, _)| client.connection_state() == State::Connected)
    }

    async fn publish(&self, job: &Job) -> Result<Published, RelayError> {
        let result = self.send(job).await;
        observe(&self.name, job, &result);
        result
    }
}
