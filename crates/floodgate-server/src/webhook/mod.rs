//! Webhook delivery: the outbox relayed to HTTP.
//!
//! The server delivers jobs of the built-in kind `webhook` itself: it sends the job's body to
//! the destination's URL, signed so the receiver can tell it came from this server, and
//! records each attempt on the job (complete on a 2xx, retry on the destination's schedule,
//! dead when permanent). Webhooks are a transport of the delivery engine
//! ([`crate::delivery`]): [`transport`] sends one attempt, and the engine does the rest
//! (limits, rate limits and breakers per destination, disable and enable, retries). [`job`]
//! builds a `webhook` job. The pieces under them, each usable and tested on its own:
//!
//! - [`request`]: the `webhook` job's payload (`{url, method?, headers?, body, destination?}`),
//!   checked when it is enqueued, so a bad URL or method is a `422` then.
//! - [`classify`]: what an answer means (delivered, retry after `Retry-After`, retry on the
//!   schedule, 410 Gone, permanent) and whether the destination's breaker counts it.
//! - [`signature`]: [Standard Webhooks](https://www.standardwebhooks.com/) signing: the
//!   `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, `whsec_` secrets,
//!   several secrets at once for rotation, and [`verify`](signature::verify) for receivers
//!   and tests.
//! - [`ssrf`]: where a delivery may go. An [`AddressPolicy`](ssrf::AddressPolicy) refuses
//!   loopback, private, link-local, metadata and other internal addresses unless a destination
//!   allows them; [`check_url`](ssrf::AddressPolicy::check_url) vets the URL (and any IP
//!   literal in it) and [`client`](ssrf::client) builds an HTTP client whose DNS resolver only
//!   ever hands the connector addresses the policy allows, with redirects and proxies off.
//!
//! ```
//! use floodgate_server::webhook::{signature, ssrf::AddressPolicy};
//!
//! let url: reqwest::Url = "https://hooks.example.com/floodgate".parse()?;
//! AddressPolicy::default().check_url(&url)?;
//!
//! let secret = signature::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let body = br#"{"event": "job.finished"}"#;
//! let [_, _, (_, sig)] = signature::headers(&[secret.clone()], "msg_1", 1_700_000_000, body)?;
//! assert!(signature::verify(&secret, "msg_1", 1_700_000_000, body, sig.to_str()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod classify;
pub mod config;
pub mod job;
pub mod request;
pub mod signature;
pub mod ssrf;
pub mod transport;

use std::sync::Arc;

use floodgate_queue::AnyStore;

use crate::delivery::engine::{Engine, EngineError, EngineSettings};
use crate::groups::PausedGroups;
use config::WebhookConfig;
use transport::WebhookTransport;

/// The webhook delivery engine with `config` (validated).
pub fn engine(
    config: &WebhookConfig,
    store: AnyStore,
    paused: Arc<PausedGroups>,
) -> Result<Engine<WebhookTransport>, EngineError> {
    let settings = EngineSettings {
        breaker_failures: config.breaker_failures,
        breaker_wait: std::time::Duration::from_secs_f64(config.breaker_wait.max(0.001)),
        redis_url: config.redis_url.clone(),
    };
    Engine::new(
        WebhookTransport::new(config.clone()),
        settings,
        store,
        paused,
    )
}
