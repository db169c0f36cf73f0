//! The settings of named limits: `[limiters.NAME]`, `[rate_limits.NAME]` and
//! `[breakers.NAME]` in the file, each checked at start with an error that names its key.
//!
//! ```toml
//! redis_url = "redis://127.0.0.1:6379"   # optional: limiters and rate limits fleet-wide
//!
//! [limiters.llm]            # at most 100 calls to the LLM at once
//! max_concurrency = 100
//! max_queue = 1000          # callers waiting at most; past it 429 QUEUE_FULL
//! lease_ttl = 30            # seconds a permit lives without a heartbeat (default 30)
//!
//! [rate_limits.per_customer] # 100 requests per minute per key
//! rate = 100
//! per = 60
//! failure_policy = "closed"  # Redis unreachable: 503 (default); "open" lets calls through
//!
//! [breakers.payments]        # opens at 50% failures over the last 100 calls
//! failure_rate = 0.5
//! open_wait = 30
//! ```

use std::time::Duration;

use floodgate::breaker::{BreakerConfig, OpenWait, TripPolicy, WindowKind};
use floodgate::rate::Quota;
use floodgate::rate::redis::FailurePolicy;
use serde::{Deserialize, Serialize};

/// What to do when Redis cannot answer (`"closed"`: refuse with 503; `"open"`: let through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Refuse: protection first (the default).
    #[default]
    Closed,
    /// Let the call through: availability first. A fleet-wide limiter then holds each server
    /// to `max_concurrency` on its own.
    Open,
}

impl From<Policy> for FailurePolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Closed => FailurePolicy::Closed,
            Policy::Open => FailurePolicy::Open,
        }
    }
}

/// `[limiters.NAME]`: a concurrency limit with priorities and a bounded wait queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimiterSpec {
    /// Permits held at once (across the fleet with `redis_url`).
    pub max_concurrency: usize,
    /// Callers waiting at once on this server; past it `429 QUEUE_FULL` (default 1,000).
    pub max_queue: usize,
    /// The longest `wait` a request may ask for, in seconds (default 30).
    pub max_wait: f64,
    /// A permit's lease without a heartbeat, 1 to 3600 seconds, when the request names none
    /// (default 30).
    pub lease_ttl: f64,
    /// Seconds after which a waiter gains a priority level, so low priorities are never starved
    /// (default: no aging). Local scope only: fleet-wide, waiters keep their priority.
    pub aging: Option<f64>,
    /// With `redis_url`: what to do when Redis cannot answer (default `closed`).
    pub failure_policy: Policy,
}

impl Default for LimiterSpec {
    fn default() -> Self {
        LimiterSpec {
            max_concurrency: 0,
            max_queue: 1_000,
            max_wait: 30.0,
            lease_ttl: 30.0,
            aging: None,
            failure_policy: Policy::Closed,
        }
    }
}

/// `[rate_limits.NAME]`: `rate` per `per` seconds per key (GCRA), with bursts of `burst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSpec {
    /// Calls allowed per period.
    pub rate: u32,
    /// The period, in seconds (default 1).
    pub per: f64,
    /// Calls allowed at once after a quiet spell (default `rate`).
    pub burst: Option<u32>,
    /// Keys remembered on this server without Redis (default 100,000); past it the least
    /// recently used idle keys are forgotten.
    pub max_keys: usize,
    /// With `redis_url`: what to do when Redis cannot answer (default `closed`).
    pub failure_policy: Policy,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        RateLimitSpec {
            rate: 0,
            per: 1.0,
            burst: None,
            max_keys: 100_000,
            failure_policy: Policy::Closed,
        }
    }
}

impl RateLimitSpec {
    /// The quota these settings describe.
    pub fn quota(&self) -> Result<Quota, String> {
        if !self.per.is_finite() || self.per <= 0.0 || self.per > 86_400.0 {
            return Err(format!(
                "per = {}: a period between 0 and 86400 seconds",
                self.per
            ));
        }
        let quota = Quota::per(self.rate, Duration::from_secs_f64(self.per))
            .map_err(|e| format!("rate = {}: {e}", self.rate))?;
        match self.burst {
            Some(burst) => quota
                .burst(burst)
                .map_err(|e| format!("burst = {burst}: {e}")),
            None => Ok(quota),
        }
    }
}

/// `[breakers.NAME]`: a circuit breaker callers report their calls' outcomes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSpec {
    /// The calls the window holds (default 100).
    pub window: usize,
    /// The failure rate that opens it, in (0, 1] (default 0.5).
    pub failure_rate: f64,
    /// Calls in the window before the rate counts (default 20).
    pub minimum_calls: u64,
    /// Opens after this many failures in a row instead of on a rate (default: the rate).
    pub consecutive_failures: Option<u32>,
    /// Calls at least this slow, in seconds, count as slow (default: not tracked).
    pub slow_call: Option<f64>,
    /// The slow-call rate that opens it, in (0, 1] (default 1.0).
    pub slow_call_rate: f64,
    /// Seconds it stays open before probes (default 30).
    pub open_wait: f64,
    /// Calls let through while half-open, across every caller (default 3).
    pub half_open_probes: u32,
    /// Seconds a call may stay unreported; then it counts as failed (default 60).
    pub call_deadline: f64,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            window: 100,
            failure_rate: 0.5,
            minimum_calls: 20,
            consecutive_failures: None,
            slow_call: None,
            slow_call_rate: 1.0,
            open_wait: 30.0,
            half_open_probes: 3,
            call_deadline: 60.0,
        }
    }
}

impl BreakerSpec {
    /// The breaker's configuration, checked.
    pub fn breaker_config(&self) -> Result<BreakerConfig, String> {
        let config = BreakerConfig {
            window: WindowKind::Count(self.window),
            trip: match self.consecutive_failures {
                Some(n) => TripPolicy::ConsecutiveFailures(n),
                None => TripPolicy::Rate {
                    failure_rate: self.failure_rate,
                    minimum_calls: self.minimum_calls,
                },
            },
            slow_call_duration: self.slow_call.map(secs).transpose()?,
            slow_call_rate: self.slow_call_rate,
            open_wait: OpenWait::fixed(secs(self.open_wait)?),
            half_open_probes: self.half_open_probes,
            call_timeout: None,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// How long a call may stay unreported.
    pub fn deadline(&self) -> Result<Duration, String> {
        secs(self.call_deadline)
    }
}

/// Seconds (more than 0, at most a day) as a duration.
pub(crate) fn secs(value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "{value} seconds: give more than 0 and at most 86400"
        ))
    }
}

/// A name usable in a URL path and a Redis key: 1 to 64 of `a-z A-Z 0-9 _ - .`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the name {name:?} must be 1 to 64 letters, digits, '_', '-' or '.'"
        ))
    }
}
