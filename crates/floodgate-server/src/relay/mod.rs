//! The outbox relayed to message brokers: NATS JetStream (exactly once into the stream) and
//! RabbitMQ (at least once, with the job id as `message_id`), as transports of the delivery
//! engine ([`crate::delivery`]). Each `[relays.NAME]` ([`config`]) relays its job kinds from
//! its queue through [`transport::RelayTransport`], so a relay gets the engine's breaker,
//! adaptive limit, retry schedule, disable and enable, metrics and dashboard rows; the
//! publishing itself is the queue crate's ([`floodgate_queue::relay`]), which Rust programs
//! can use without the server.
//!
//! ```
//! use std::collections::BTreeMap;
//! use floodgate_server::relay::config::{RelayConfig, validate};
//!
//! let relay = RelayConfig {
//!     url: "nats://127.0.0.1:4222".into(),
//!     kinds: vec!["order.created".into()],
//!     subject: Some("orders.{kind}".into()),
//!     ..RelayConfig::default()
//! };
//! validate(&BTreeMap::from([("orders".to_owned(), relay)]))?;
//! # Ok::<(), floodgate_server::config::ConfigError>(())
//! ```

pub mod config;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use floodgate_queue::AnyStore;

use crate::delivery::engine::{Engine, EngineError, EngineSettings};
use crate::groups::PausedGroups;
use config::RelayConfig;
use transport::RelayTransport;

/// The delivery engine of relay `name` with `config` (validated).
pub fn engine(
    name: &str,
    config: &RelayConfig,
    rescue_interval: Duration,
    store: AnyStore,
    paused: Arc<PausedGroups>,
) -> Result<Engine<RelayTransport>, EngineError> {
    let transport =
        RelayTransport::new(name, config, rescue_interval).map_err(|e| EngineError::Worker {
            kind: format!("relay:{name}"),
            reason: e.to_string(),
        })?;
    let settings = EngineSettings {
        breaker_failures: config.breaker_failures,
        breaker_wait: Duration::from_secs_f64(config.breaker_wait),
        redis_url: None,
    };
    Engine::new(transport, settings, store, paused)
}
