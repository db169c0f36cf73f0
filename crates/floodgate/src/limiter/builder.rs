//! [`LimiterBuilder`]: every limiter setting, validated in `build`.

use std::time::Duration;

use super::Limiter;
use super::engine::{Config, Engine, MAX_PERMITS};
use super::error::LimiterError;
use crate::sync::Arc;

/// The largest `max_queue` accepted; leave it unset for an unbounded queue.
pub const MAX_QUEUE: usize = u32::MAX as usize;

/// Builds a [`Limiter`]; see [`Limiter::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LimiterBuilder {
    limit: usize,
    max_queue: Option<usize>,
    acquire_timeout: Option<Duration>,
    aging: Option<Duration>,
    name: String,
}

impl Default for LimiterBuilder {
    fn default() -> Self {
        LimiterBuilder {
            limit: 1,
            max_queue: None,
            acquire_timeout: None,
            aging: None,
            name: "default".to_owned(),
        }
    }
}

impl LimiterBuilder {
    /// How many permits may be held at once (default 1).
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// How many acquires may wait; when full, a new acquire fails at once with
    /// [`Rejected::QueueFull`](super::Rejected::QueueFull). `0` means nobody waits. Unbounded
    /// by default.
    pub fn max_queue(mut self, max_queue: usize) -> Self {
        self.max_queue = Some(max_queue);
        self
    }

    /// How long an acquire may wait before it fails with
    /// [`Rejected::Timeout`](super::Rejected::Timeout). No timeout by default.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// Anti-starvation: a waiter's effective priority rises by one level for every `interval`
    /// it has waited, so a priority-1 waiter overtakes fresh priority-10 work after
    /// `9 * interval`. Off by default (strict priorities).
    pub fn aging(mut self, interval: Duration) -> Self {
        self.aging = Some(interval);
        self
    }

    /// The name used in stats, metrics labels (`limiter="..."`) and tracing events.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the settings and builds the limiter.
    pub fn build(self) -> Result<Limiter, LimiterError> {
        check_limit(self.limit)?;
        if let Some(q) = self.max_queue
            && q > MAX_QUEUE
        {
            return Err(LimiterError::QueueTooLarge {
                requested: q,
                max: MAX_QUEUE,
            });
        }
        if self.acquire_timeout == Some(Duration::ZERO) {
            return Err(LimiterError::ZeroDuration {
                setting: "acquire_timeout",
            });
        }
        if self.aging == Some(Duration::ZERO) {
            return Err(LimiterError::ZeroDuration { setting: "aging" });
        }
        let config = Config {
            name: self.name,
            max_queue: self.max_queue.unwrap_or(usize::MAX),
            aging: self.aging,
            acquire_timeout: self.acquire_timeout,
        };
        Ok(Limiter {
            engine: Arc::new(Engine::new(self.limit, config)),
        })
    }
}

pub(crate) fn check_limit(limit: usize) -> Result<(), LimiterError> {
    if limit == 0 {
        return Err(LimiterError::ZeroLimit);
    }
    if limit > MAX_PERMITS {
        return Err(LimiterError::LimitTooLarge {
            requested: limit,
            max: MAX_PERMITS,
        });
    }
    Ok(())
}
