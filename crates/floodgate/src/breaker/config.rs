//! Breaker settings: [`BreakerConfig`], validated when a breaker is built.

use std::time::Duration;

use super::error::BreakerConfigError;

/// Largest count-based window.
pub const MAX_WINDOW_CALLS: usize = 1 << 20;

/// Which calls the failure rate is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `n` calls.
    Count(usize),
    /// The calls of the last `window`, kept in `buckets` buckets.
    Time {
        /// The window's length.
        window: Duration,
        /// How many buckets it is kept in (its granularity).
        buckets: usize,
    },
}

/// When the breaker trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripPolicy {
    /// Open when, over the window and after `minimum_calls`, the failure rate reaches
    /// `failure_rate` or the slow-call rate reaches `slow_call_rate` (if slow calls are
    /// tracked).
    Rate {
        /// Failure rate in `(0, 1]` that opens the breaker (default 0.5).
        failure_rate: f64,
        /// Calls needed in the window before the rate counts (default 20).
        minimum_calls: u64,
    },
    /// Open after this many failures in a row.
    ConsecutiveFailures(u32),
}

/// How long the breaker stays open: `base * factor^(re-opens in a row)`, at most `cap`, then
/// spread by ±`jitter` (a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenWait {
    /// The first wait (default 30 s).
    pub base: Duration,
    /// Growth per consecutive re-open (default 2.0).
    pub factor: f64,
    /// The longest wait (default 10 min).
    pub cap: Duration,
    /// Random spread as a fraction of the wait, in `[0, 1)` (default 0.1).
    pub jitter: f64,
}

impl Default for OpenWait {
    fn default() -> Self {
        OpenWait {
            base: Duration::from_secs(30),
            factor: 2.0,
            cap: Duration::from_secs(600),
            jitter: 0.1,
        }
    }
}

impl OpenWait {
    /// A fixed wait without growth or jitter.
    pub fn fixed(wait: Duration) -> Self {
        OpenWait {
            base: wait,
            factor: 1.0,
            cap: wait,
            jitter: 0.0,
        }
    }

    /// The wait before jitter after `reopens` consecutive re-opens.
    pub(crate) fn nominal(&self, reopens: u32) -> Duration {
        let grown = self.base.as_secs_f64() * self.factor.powi(reopens.min(64) as i32);
        Duration::from_secs_f64(grown.min(self.cap.as_secs_f64()))
    }
}

/// Every setting of a circuit breaker. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The outcome window (default: the last 100 calls).
    pub window: WindowKind,
    /// When to open (default: 50% failures after 20 calls).
    pub trip: TripPolicy,
    /// Calls at least this slow count as slow (default: slow calls not tracked).
    pub slow_call_duration: Option<Duration>,
    /// Slow-call rate in `(0, 1]` that opens the breaker (default 1.0).
    pub slow_call_rate: f64,
    /// How long to stay open.
    pub open_wait: OpenWait,
    /// Calls let through while half-open; all must succeed to close (default 3, at most
    /// 1,024).
    pub half_open_probes: u32,
    /// A call slower than this is cancelled and counted as a failure (default: none).
    pub call_timeout: Option<Duration>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowKind::Count(100),
            trip: TripPolicy::Rate {
                failure_rate: 0.5,
                minimum_calls: 20,
            },
            slow_call_duration: None,
            slow_call_rate: 1.0,
            open_wait: OpenWait::default(),
            half_open_probes: 3,
            call_timeout: None,
        }
    }
}

impl BreakerConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let count = |setting, value: u64, max: u64| {
            if value == 0 || value > max {
                Err(BreakerConfigError::Count {
                    setting,
                    value,
                    max,
                })
            } else {
                Ok(())
            }
        };
        let rate = |setting, value: f64| {
            if value > 0.0 && value <= 1.0 {
                Ok(())
            } else {
                Err(BreakerConfigError::Rate { setting, value })
            }
        };
        let positive = |setting, d: Duration| {
            if d.is_zero() {
                Err(BreakerConfigError::ZeroDuration { setting })
            } else {
                Ok(())
            }
        };
        match self.window {
            WindowKind::Count(n) => count("window calls", n as u64, MAX_WINDOW_CALLS as u64)?,
            WindowKind::Time { window, buckets } => {
                positive("window duration", window)?;
                count("window buckets", buckets as u64, 3_600)?;
            }
        }
        match self.trip {
            TripPolicy::Rate {
                failure_rate,
                minimum_calls,
            } => {
                rate("failure_rate_threshold", failure_rate)?;
                count("minimum_calls", minimum_calls, u64::MAX)?;
            }
            TripPolicy::ConsecutiveFailures(n) => {
                count("consecutive_failures", u64::from(n), u64::from(u32::MAX))?
            }
        }
        rate("slow_call_rate_threshold", self.slow_call_rate)?;
        if let Some(d) = self.slow_call_duration {
            positive("slow_call_duration", d)?;
        }
        if let Some(d) = self.call_timeout {
            positive("call_timeout", d)?;
        }
        positive("open_wait base", self.open_wait.base)?;
        if !(self.open_wait.factor >= 1.0 && self.open_wait.factor.is_finite()) {
            return Err(BreakerConfigError::Factor(self.open_wait.factor));
        }
        if !(0.0..1.0).contains(&self.open_wait.jitter) {
            return Err(BreakerConfigError::Jitter(self.open_wait.jitter));
        }
        count(
            "half_open_probes",
            u64::from(self.half_open_probes),
            u64::from(super::engine::MAX_PROBES),
        )?;
        Ok(())
    }
}

/// Builds a [`CircuitBreaker`](super::CircuitBreaker); see
/// [`CircuitBreaker::builder`](super::CircuitBreaker::builder).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BreakerBuilder {
    pub(crate) name: Option<String>,
    pub(crate) config: BreakerConfig,
}

impl BreakerBuilder {
    /// The name used in errors, events, metrics labels (`breaker="..."`) and tracing.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Replaces every setting at once.
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Compute rates over the last `calls` calls (the default, with 100).
    pub fn count_window(mut self, calls: usize) -> Self {
        self.config.window = WindowKind::Count(calls);
        self
    }

    /// Compute rates over the calls of the last `window`, kept in `buckets` buckets.
    pub fn time_window(mut self, window: Duration, buckets: usize) -> Self {
        self.config.window = WindowKind::Time { window, buckets };
        self
    }

    /// Open when the failure rate reaches `rate` (in `(0, 1]`) after `minimum_calls` calls.
    pub fn failure_rate(mut self, rate: f64, minimum_calls: u64) -> Self {
        self.config.trip = TripPolicy::Rate {
            failure_rate: rate,
            minimum_calls,
        };
        self
    }

    /// Open after `n` failures in a row instead of by rate.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.trip = TripPolicy::ConsecutiveFailures(n);
        self
    }

    /// Count calls of at least `duration` as slow, and open when their rate reaches `rate`.
    pub fn slow_calls(mut self, duration: Duration, rate: f64) -> Self {
        self.config.slow_call_duration = Some(duration);
        self.config.slow_call_rate = rate;
        self
    }

    /// How long to stay open, growing on consecutive re-opens.
    pub fn open_wait(mut self, wait: OpenWait) -> Self {
        self.config.open_wait = wait;
        self
    }

    /// How many calls half-open lets through (all must succeed to close).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.config.half_open_probes = probes;
        self
    }

    /// Cancel calls slower than `timeout` and count them as failures.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = Some(timeout);
        self
    }

    /// Checks the settings and builds the breaker.
    pub fn build(self) -> Result<super::CircuitBreaker, BreakerConfigError> {
        super::CircuitBreaker::from_config(
            self.name.unwrap_or_else(|| "default".to_owned()),
            self.config,
        )
    }
}
