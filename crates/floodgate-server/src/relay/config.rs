//! Relay settings: `[relays.NAME]`, one per broker destination. The URL's scheme picks the
//! broker: `nats://` publishes to NATS JetStream, `amqp://` to RabbitMQ.
//!
//! ```toml
//! [relays.orders]
//! url = "nats://127.0.0.1:4222"
//! kinds = ["order.created", "order.shipped"]   # the job kinds relayed
//! queue = "events"                             # where those jobs are enqueued (default "relay")
//! subject = "orders.{kind}.{key}"              # {kind}, {queue}, {key} (ordering key), {id}
//! stream = "ORDERS"                            # checked at start: exists, duplicate window
//!
//! [relays.billing]
//! url = "amqp://guest:guest@127.0.0.1:5672/%2f"
//! kinds = ["invoice.paid"]
//! exchange = "billing"                         # checked at start: exists
//! routing_key = "{kind}"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use floodgate_queue::relay::Template;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::delivery::schedule::RetrySchedule;

/// The broker a relay publishes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// NATS JetStream (`nats://`, `tls://`).
    JetStream,
    /// RabbitMQ (`amqp://`, `amqps://`).
    RabbitMq,
}

/// One relay's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The broker's URL: `nats://host:4222` (JetStream) or `amqp://user:password@host:5672/vhost`
    /// (RabbitMQ). A password in it is masked by `floodgate config`.
    pub url: String,
    /// The job kinds relayed (at least one).
    pub kinds: Vec<String>,
    /// The queue those jobs are in (default `relay`).
    pub queue: String,
    /// JetStream: the subject, a template over the job (default `{kind}`).
    pub subject: Option<String>,
    /// JetStream: the stream that captures the subjects. Checked at start: it must exist, and
    /// its duplicate window must outlast a crashed relay's lease (see the README).
    pub stream: Option<String>,
    /// RabbitMQ: the exchange (default `""`, the default exchange). Checked at start.
    pub exchange: Option<String>,
    /// RabbitMQ: the routing key, a template over the job (default `{kind}`).
    pub routing_key: Option<String>,
    /// Publishes awaiting their acknowledgement at once (default 256).
    pub concurrency: usize,
    /// Seconds a relay process holds a job's lease (default 30; renewed while it publishes):
    /// after a crash, its jobs are published again after at most this plus `rescue_interval`.
    pub lease_ttl: f64,
    /// Seconds to wait for the broker's acknowledgement or confirm (default 5).
    pub ack_timeout: f64,
    /// Retry delays in seconds after the broker refuses a message (a nack, unroutable, no
    /// stream) (default: 1 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h; then dead). A broker
    /// that is unreachable spends no attempt: its jobs wait.
    pub schedule: Option<Vec<f64>>,
    /// Consecutive failures that open the relay's breaker (default 5).
    pub breaker_failures: u32,
    /// Seconds an open breaker waits before a probe (default 2).
    pub breaker_wait: f64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            url: String::new(),
            kinds: Vec::new(),
            queue: "relay".to_owned(),
            subject: None,
            stream: None,
            exchange: None,
            routing_key: None,
            concurrency: 256,
            lease_ttl: 30.0,
            ack_timeout: 5.0,
            schedule: None,
            breaker_failures: 5,
            breaker_wait: 2.0,
        }
    }
}

impl RelayConfig {
    /// The broker its URL names, if any.
    pub fn broker(&self) -> Option<Broker> {
        let scheme = self.url.split_once("://")?.0;
        match scheme {
            "nats" | "tls" => Some(Broker::JetStream),
            "amqp" | "amqps" => Some(Broker::RabbitMq),
            _ => None,
        }
    }

    /// The subject or routing key template.
    pub fn target(&self) -> Template {
        let source = match self.broker() {
            Some(Broker::RabbitMq) => self.routing_key.as_deref(),
            _ => self.subject.as_deref(),
        };
        Template::parse(source.unwrap_or("{kind}"))
            .unwrap_or_else(|_| Template::parse("{kind}").expect("a valid template"))
    }

    /// The lease its worker takes.
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_ttl)
    }

    /// The retry schedule after a refused message.
    pub fn retry_schedule(&self) -> RetrySchedule {
        match &self.schedule {
            Some(delays) => {
                RetrySchedule::new(delays.iter().map(|s| Duration::from_secs_f64(*s)).collect())
            }
            None => RetrySchedule::new(
                [1, 5, 30, 120, 600, 1800, 3600]
                    .into_iter()
                    .map(Duration::from_secs)
                    .collect(),
            ),
        }
    }

    /// The longest a published job can wait before it is published again, while the stream
    /// must still remember its id: a crashed relay's lease, the rescue, and an open breaker's
    /// wait (a publish whose acknowledgement was lost is tried again after it).
    pub fn republish_within(&self, rescue_interval: Duration) -> Duration {
        self.lease()
            + rescue_interval
            + Duration::from_secs_f64(self.breaker_wait.max(self.ack_timeout))
    }
}

/// Named optional settings of one broker.
type Fields<'a> = &'a [(&'a str, &'a Option<String>)];

/// Checks every relay's settings (nothing is connected): errors name the key.
pub fn validate(relays: &BTreeMap<String, RelayConfig>) -> Result<(), ConfigError> {
    let mut taken = BTreeSet::new();
    for (name, r) in relays {
        let invalid = |field: &str, value: String, fix: &str| {
            Err(ConfigError::Invalid {
                key: format!("relays.{name}.{field}"),
                value,
                fix: fix.to_owned(),
            })
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ConfigError::Invalid {
                key: format!("relays.{name}"),
                value: format!("{name:?}"),
                fix: "name a relay with letters, digits, `-`, `_` and `.` (at most 64)".into(),
            });
        }
        let shown = floodgate_queue::redact_url(&r.url);
        let Some(broker) = r.broker() else {
            return invalid(
                "url",
                format!("{shown:?}"),
                "write nats://host:4222 (NATS JetStream) or amqp://user:password@host:5672/%2f \
                 (RabbitMQ)",
            );
        };
        let built = match broker {
            Broker::JetStream => floodgate_queue::relay::jetstream::JetStream::new(
                name.clone(),
                floodgate_queue::relay::jetstream::JetStreamSettings::new(&r.url, r.target()),
            )
            .map(drop),
            Broker::RabbitMq => floodgate_queue::relay::amqp::Amqp::new(
                name.clone(),
                floodgate_queue::relay::amqp::AmqpSettings::new(&r.url, "", r.target()),
            )
            .map(drop),
        };
        if let Err(e) = built {
            return invalid("url", format!("{shown:?}"), &e.to_string());
        }
        let (own, others): (Fields<'_>, Fields<'_>) = match broker {
            Broker::JetStream => (
                &[("subject", &r.subject), ("stream", &r.stream)],
                &[("exchange", &r.exchange), ("routing_key", &r.routing_key)],
            ),
            Broker::RabbitMq => (
                &[("exchange", &r.exchange), ("routing_key", &r.routing_key)],
                &[("subject", &r.subject), ("stream", &r.stream)],
            ),
        };
        if let Some((field, _)) = others.iter().find(|(_, v)| v.is_some()) {
            let wanted: Vec<&str> = own.iter().map(|(f, _)| *f).collect();
            return invalid(
                field,
                "(set)".into(),
                &format!(
                    "{field} is not a setting of this broker (the URL's scheme chose it): use {}",
                    wanted.join(" and ")
                ),
            );
        }
        for (field, template) in [("subject", &r.subject), ("routing_key", &r.routing_key)] {
            if let Some(t) = template
                && let Err(e) = Template::parse(t)
            {
                return invalid(field, format!("{t:?}"), &e.to_string());
            }
        }
        if r.kinds.is_empty() {
            return invalid(
                "kinds",
                "[]".into(),
                "name the job kinds to relay: kinds = [\"order.created\"]",
            );
        }
        for kind in &r.kinds {
            if kind.is_empty() || kind == crate::webhook::request::KIND {
                return invalid(
                    "kinds",
                    format!("{kind:?}"),
                    "a job kind of your own (not empty, not `webhook`)",
                );
            }
            if !taken.insert(kind.clone()) {
                return invalid(
                    "kinds",
                    format!("{kind:?}"),
                    "each kind is relayed by one relay only",
                );
            }
        }
        if r.queue.is_empty() {
            return invalid("queue", "\"\"".into(), "name a queue (default relay)");
        }
        if !(1..=10_000).contains(&r.concurrency) {
            return invalid("concurrency", r.concurrency.to_string(), "1 to 10000");
        }
        for (field, v, range) in [
            ("lease_ttl", r.lease_ttl, 1.0..=3600.0),
            ("ack_timeout", r.ack_timeout, 0.1..=300.0),
            ("breaker_wait", r.breaker_wait, 0.1..=3600.0),
        ] {
            if !range.contains(&v) {
                return invalid(
                    field,
                    v.to_string(),
                    &format!("{} to {} seconds", range.start(), range.end()),
                );
            }
        }
        if r.breaker_failures == 0 {
            return invalid("breaker_failures", "0".into(), "at least 1");
        }
        if let Some(s) = &r.schedule
            && s.iter()
                .any(|d| !d.is_finite() || *d < 0.0 || *d > 86_400.0 * 7.0)
        {
            return invalid(
                "schedule",
                format!("{s:?}"),
                "delays in seconds, each 0 to 604800",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(r: RelayConfig) -> Result<(), ConfigError> {
        validate(&BTreeMap::from([("orders".to_owned(), r)]))
    }

    fn nats() -> RelayConfig {
        RelayConfig {
            url: "nats://127.0.0.1:4222".into(),
            kinds: vec!["order.created".into()],
            ..RelayConfig::default()
        }
    }

    #[test]
    fn valid_settings_pass() {
        one(nats()).unwrap();
        one(RelayConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: Some("orders".into()),
            routing_key: Some("{kind}.{key}".into()),
            ..nats()
        })
        .unwrap();
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = |r| one(r).unwrap_err().to_string();
        let bad_url = e(RelayConfig {
            url: "http://x:1".into(),
            ..nats()
        });
        assert!(
            bad_url.contains("relays.orders.url") && bad_url.contains("nats://"),
            "{bad_url}"
        );
        let secret = e(RelayConfig {
            url: "kafka://u:hunter2@x".into(),
            ..nats()
        });
        assert!(!secret.contains("hunter2"), "{secret}");
        let no_kinds = e(RelayConfig {
            kinds: vec![],
            ..nats()
        });
        assert!(no_kinds.contains("relays.orders.kinds"), "{no_kinds}");
        let wrong_field = e(RelayConfig {
            exchange: Some("x".into()),
            ..nats()
        });
        assert!(
            wrong_field.contains("relays.orders.exchange") && wrong_field.contains("subject"),
            "{wrong_field}"
        );
        let template = e(RelayConfig {
            subject: Some("orders.{kid}".into()),
            ..nats()
        });
        assert!(
            template.contains("relays.orders.subject") && template.contains("{kind}"),
            "{template}"
        );
        let webhook = e(RelayConfig {
            kinds: vec!["webhook".into()],
            ..nats()
        });
        assert!(webhook.contains("relays.orders.kinds"), "{webhook}");
        let lease = e(RelayConfig {
            lease_ttl: 0.0,
            ..nats()
        });
        assert!(lease.contains("relays.orders.lease_ttl"), "{lease}");
    }

    #[test]
    fn a_kind_goes_to_one_relay() {
        let twice = validate(&BTreeMap::from([
            ("a".to_owned(), nats()),
            ("b".to_owned(), nats()),
        ]))
        .unwrap_err()
        .to_string();
        assert!(twice.contains("relays.b.kinds"), "{twice}");
    }
}
