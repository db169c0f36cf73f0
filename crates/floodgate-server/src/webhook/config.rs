//! Webhook settings: defaults for every destination, and per destination (by host, or by the
//! name a payload gives in `destination`) overrides.
//!
//! ```toml
//! [webhooks]
//! secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
//! concurrency = 64              # deliveries in flight across destinations
//! max_concurrency = 16          # deliveries in flight per destination
//! timeout = 30                  # seconds, the whole request, the answer's body included
//! max_response_bytes = 4096     # of each answer's body kept; the rest is never read
//!
//! [webhooks.destinations."hooks.partner.example"]
//! secrets = ["whsec_..."]       # several: each request is signed with each (rotation)
//! schedule = [1, 60, 600]       # retry delays in seconds
//!
//! [webhooks.destinations."127.0.0.1"]
//! allow_private = true          # a local receiver (refused by default)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::signature::Secret;
use super::ssrf::AddressPolicy;
use crate::delivery::schedule::RetrySchedule;

/// Bytes of an answer's body kept unless `max_response_bytes` says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4096;

/// The most `max_response_bytes` may be.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Settings of webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// `whsec_` secrets every delivery is signed with (none: unsigned).
    pub secrets: Vec<String>,
    /// Deliveries in flight across destinations (default 64); the last quarter only go to
    /// destinations with nothing in flight.
    pub concurrency: usize,
    /// Deliveries in flight per destination (default 16).
    pub max_concurrency: usize,
    /// Seconds to connect (default 5).
    pub connect_timeout: f64,
    /// Seconds for the whole request, the answer's body included (default 30).
    pub timeout: f64,
    /// Bytes of each answer's body read and kept with the attempt (default 4096, at most
    /// 1 MiB); the rest is never read: the connection is dropped.
    pub max_response_bytes: usize,
    /// The longest `Retry-After` honoured, in seconds (default 3600).
    pub max_retry_after: f64,
    /// Retry delays in seconds (default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h).
    pub schedule: Option<Vec<f64>>,
    /// Deliver to loopback, private and link-local addresses (default false).
    pub allow_private: bool,
    /// Networks allowed even when private, like `10.1.0.0/16`.
    pub allowed_subnets: Vec<String>,
    /// Refuse `http://` URLs (default false).
    pub https_only: bool,
    /// Deliveries per second per destination (default: no limit); bursts of up to a second's
    /// worth.
    pub rate_per_second: Option<u32>,
    /// With a Redis URL, the rate limits are shared by every server using it (one GCRA per
    /// destination in Redis, on Redis's clock); without, each server limits alone.
    pub redis_url: Option<String>,
    /// Consecutive failures that open a destination's breaker (default 5).
    pub breaker_failures: u32,
    /// Seconds a destination's open breaker waits before a probe (default 30).
    pub breaker_wait: f64,
    /// Overrides per destination (a host, or a payload's `destination` name).
    pub destinations: BTreeMap<String, Destination>,
}

/// One destination's overrides; unset fields take the `[webhooks]` values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Destination {
    /// Its secrets.
    pub secrets: Option<Vec<String>>,
    /// Deliveries in flight.
    pub max_concurrency: Option<usize>,
    /// Seconds to connect.
    pub connect_timeout: Option<f64>,
    /// Seconds for the whole request.
    pub timeout: Option<f64>,
    /// Retry delays in seconds.
    pub schedule: Option<Vec<f64>>,
    /// Deliver to private addresses.
    pub allow_private: Option<bool>,
    /// Networks allowed even when private.
    pub allowed_subnets: Option<Vec<String>>,
    /// Deliveries per second.
    pub rate_per_second: Option<u32>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secrets: Vec::new(),
            concurrency: 64,
            max_concurrency: 16,
            connect_timeout: 5.0,
            timeout: 30.0,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_retry_after: 3600.0,
            schedule: None,
            allow_private: false,
            allowed_subnets: Vec::new(),
            https_only: false,
            rate_per_second: None,
            redis_url: None,
            breaker_failures: 5,
            breaker_wait: 30.0,
            destinations: BTreeMap::new(),
        }
    }
}

/// A webhook setting that cannot be used, and what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhooks {key}: {fix}")]
pub struct InvalidWebhookSetting {
    /// The setting's key under `[webhooks]`.
    pub key: &'static str,
    /// What is wrong, and what to write instead.
    pub fix: String,
}

fn invalid(key: &'static str, fix: impl Into<String>) -> InvalidWebhookSetting {
    InvalidWebhookSetting {
        key,
        fix: fix.into(),
    }
}

/// One destination's settings, resolved and parsed.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The secrets to sign with.
    pub secrets: Vec<Secret>,
    /// Deliveries in flight.
    pub max_concurrency: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Retry delays.
    pub schedule: RetrySchedule,
    /// Where it may connect.
    pub policy: AddressPolicy,
    /// Deliveries per second, if limited.
    pub rate_per_second: Option<u32>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 365.0 * 86_400.0))
}

impl WebhookConfig {
    /// The settings of `destination` (a configured name or host; others get the defaults), or
    /// what is wrong with them.
    pub fn resolve(&self, destination: &str) -> Result<Resolved, InvalidWebhookSetting> {
        let d = self
            .destinations
            .get(destination)
            .cloned()
            .unwrap_or_default();
        let secrets = d
            .secrets
            .as_ref()
            .unwrap_or(&self.secrets)
            .iter()
            .map(|s| Secret::parse(s).map_err(|e| invalid("secrets", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let schedule = match d.schedule.as_ref().or(self.schedule.as_ref()) {
            Some(delays) => RetrySchedule::new(delays.iter().map(|s| secs(*s)).collect()),
            None => RetrySchedule::default(),
        };
        let subnets = d
            .allowed_subnets
            .as_ref()
            .unwrap_or(&self.allowed_subnets)
            .iter()
            .map(|s| {
                s.parse().map_err(|_| {
                    invalid(
                        "allowed_subnets",
                        format!("{s:?} is not a network like 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Resolved {
            secrets,
            max_concurrency: d.max_concurrency.unwrap_or(self.max_concurrency).max(1),
            connect_timeout: secs(d.connect_timeout.unwrap_or(self.connect_timeout)),
            timeout: secs(d.timeout.unwrap_or(self.timeout)),
            schedule,
            policy: AddressPolicy {
                allow_private: d.allow_private.unwrap_or(self.allow_private),
                allowed_subnets: subnets,
                https_only: self.https_only,
            },
            rate_per_second: d.rate_per_second.or(self.rate_per_second),
        })
    }

    /// Checks every destination's settings.
    pub fn validate(&self) -> Result<(), InvalidWebhookSetting> {
        self.resolve("")?;
        for name in self.destinations.keys() {
            self.resolve(name)?;
        }
        let rates = self
            .destinations
            .values()
            .filter_map(|d| d.rate_per_second)
            .chain(self.rate_per_second);
        for rate in rates {
            floodgate::rate::Quota::per_second(rate)
                .map_err(|e| invalid("rate_per_second", e.to_string()))?;
        }
        if let Some(url) = &self.redis_url {
            let settings = floodgate::rate::redis::RedisSettings::new(url.clone());
            let quota = floodgate::rate::Quota::per_second(1)
                .map_err(|e| invalid("rate_per_second", e.to_string()))?;
            floodgate::rate::redis::RedisRateLimiter::new(settings, quota).map_err(|e| {
                invalid(
                    "redis_url",
                    format!("{e}; write redis://host:6379 (or rediss:// for TLS)"),
                )
            })?;
        }
        if self.concurrency == 0 {
            return Err(invalid("concurrency", "at least 1"));
        }
        if self.breaker_failures == 0 {
            return Err(invalid("breaker_failures", "at least 1"));
        }
        if self.max_response_bytes > MAX_RESPONSE_BYTES {
            return Err(invalid(
                "max_response_bytes",
                format!(
                    "{} is over {MAX_RESPONSE_BYTES} (1 MiB)",
                    self.max_response_bytes
                ),
            ));
        }
        Ok(())
    }
}
