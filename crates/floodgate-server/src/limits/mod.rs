//! Limits as a service: named concurrency limits ([`permits`]), rate limits ([`rates`]) and
//! circuit breakers ([`breakers`]) declared in the configuration and used over HTTP by
//! processes in any language. With `redis_url`, limiters and rate limits hold across every
//! `floodgate serve` sharing that Redis, and breakers follow each other's transitions
//! ([`fanout`]); without it each server limits alone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use floodgate_server::config::Config;
//! use floodgate_server::limits::{Limits, config::LimiterSpec};
//!
//! let mut config = Config::default();
//! config.limiters.insert("llm".into(), LimiterSpec { max_concurrency: 100, ..Default::default() });
//! let limits = Limits::from_config(&config).unwrap();
//! assert!(limits.permits().contains("llm"));
//! # }
//! ```

pub mod book;
pub mod breakers;
pub mod config;
pub mod fanout;
pub mod fleet_queue;
pub mod permits;
pub mod rates;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use self::book::Gone;
use self::breakers::Breakers;
use self::fanout::Fanout;
use self::permits::Permits;
use self::rates::RateLimits;
use crate::config::{Config, ConfigError};

/// Where a limit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// On this server only (no `redis_url`).
    Local,
    /// Across every server sharing the Redis of `redis_url`.
    Fleet,
}

impl Scope {
    fn of(fleet: bool) -> Scope {
        if fleet { Scope::Fleet } else { Scope::Local }
    }
}

/// Why a limit operation failed; the API answers each with its own problem code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// No limiter, rate limit or breaker of that name.
    #[error("no {kind} is named {name:?}; {known}")]
    Unknown {
        /// `limiter`, `rate limit` or `breaker`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// A field is out of range.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The limiter's wait queue is full.
    #[error("{0} callers are waiting already; retry later")]
    QueueFull(usize),
    /// No permit within the wait.
    #[error("no permit was free within {0} s")]
    AcquireTimeout(f64),
    /// Redis could not answer and the limiter's policy is closed.
    #[error("the fleet-wide limiter cannot reach Redis: {0}")]
    LimiterUnavailable(String),
    /// Redis could not answer and the rate limit's policy is closed.
    #[error("the fleet-wide rate limit cannot reach Redis: {0}")]
    RateLimitUnavailable(String),
    /// The permit's lease ran out (or it was released): it no longer counts.
    #[error("{0}")]
    PermitLost(String),
    /// The call's deadline passed before its report: it was counted as failed.
    #[error("{0}")]
    CallExpired(String),
    /// No permit or call of that id.
    #[error("{0}")]
    NoSuchId(String),
    /// The breaker is open.
    #[error("the breaker {breaker:?} is open; retry later")]
    BreakerOpen {
        /// The breaker.
        breaker: String,
        /// When it lets a probe through (`None`: forced open).
        retry_after: Option<Duration>,
    },
    /// The server is shutting down.
    #[error("the server is shutting down; retry against another node")]
    Closing,
}

impl LimitError {
    fn unknown<'a>(
        kind: &'static str,
        name: &str,
        known: impl Iterator<Item = &'a String>,
    ) -> LimitError {
        let known: Vec<&str> = known.map(String::as_str).collect();
        LimitError::Unknown {
            kind,
            name: name.to_owned(),
            known: if known.is_empty() {
                format!(
                    "none is configured (add [{}s.NAME] to the settings)",
                    kind.replace(' ', "_")
                )
            } else {
                format!("configured: {}", known.join(", "))
            },
        }
    }

    fn permit_gone(gone: Gone, id: &str) -> LimitError {
        match gone {
            Gone::Unknown => LimitError::NoSuchId(format!("no permit {id:?} is held")),
            Gone::Finished => LimitError::PermitLost(format!("the permit {id:?} was released")),
            Gone::Expired => LimitError::PermitLost(format!(
                "the permit {id:?} was taken back when its lease ran out; acquire a new one \
                 (heartbeat more often than its lease_ttl)"
            )),
        }
    }

    fn call_gone(gone: Gone, id: &str) -> LimitError {
        match gone {
            Gone::Unknown => LimitError::NoSuchId(format!("no call {id:?} awaits a report here")),
            Gone::Finished => {
                LimitError::CallExpired(format!("the call {id:?} was reported already"))
            }
            Gone::Expired => LimitError::CallExpired(format!(
                "the call {id:?} was not reported within its deadline and was counted as failed"
            )),
        }
    }
}

/// The three kinds of named limits, built from the settings.
pub struct Limits {
    permits: Arc<Permits>,
    rates: RateLimits,
    breakers: Arc<Breakers>,
    redis_url: Option<String>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("fleet", &self.redis_url.is_some())
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// The limits the settings declare; errors name the key.
    pub fn from_config(config: &Config) -> Result<Limits, ConfigError> {
        let redis = config.redis_url.as_deref();
        let invalid = |(key, fix): (String, String)| ConfigError::Invalid {
            key,
            value: "(see the file)".into(),
            fix,
        };
        Ok(Limits {
            permits: Arc::new(Permits::new(config.limiters.clone(), redis).map_err(invalid)?),
            rates: RateLimits::new(config.rate_limits.clone(), redis).map_err(invalid)?,
            breakers: Arc::new(Breakers::new(config.breakers.clone()).map_err(invalid)?),
            redis_url: config.redis_url.clone(),
        })
    }

    /// The named concurrency limits.
    pub fn permits(&self) -> &Permits {
        &self.permits
    }

    /// The named rate limits.
    pub fn rates(&self) -> &RateLimits {
        &self.rates
    }

    /// The named breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Starts the background work on the current runtime until `stop`: taking back expired
    /// permits, failing unreported calls, and (with Redis) the breakers' fan-out.
    pub fn start(&self, stop: CancellationToken) {
        // The fan-out tells its own messages from others' by this process's random name.
        let node = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let permits = self.permits.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move { permits.run(stop).await }
        });
        let breakers = self.breakers.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move { breakers.run(stop).await }
        });
        if let Some(url) = &self.redis_url
            && !self.breakers.is_empty()
        {
            match Fanout::new(url, &node) {
                Ok(fanout) => {
                    let breakers = self.breakers.clone();
                    tokio::spawn(async move { fanout.run(breakers, stop).await });
                }
                Err(e) => tracing::warn!(error = %e, "breakers will not follow other servers"),
            }
        }
    }
}
