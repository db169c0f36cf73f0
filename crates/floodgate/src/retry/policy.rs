//! Backoff policies: the [`RetryPolicy`] trait and [`ExponentialBackoff`].

use std::time::Duration;

use rand::RngExt;

/// Decides whether, and after how long, to try again.
pub trait RetryPolicy: Send + Sync {
    /// The delay before the next attempt after `attempts` attempts have failed over
    /// `elapsed`, given the previous delay (`None` before the first retry); `None` to stop.
    fn next_delay(
        &self,
        attempts: u32,
        elapsed: Duration,
        previous: Option<Duration>,
    ) -> Option<Duration>;

    /// The longest delay the policy ever returns (a server's Retry-After is clamped to it
    /// unless the policy lets Retry-After exceed it).
    fn max_delay(&self) -> Duration;

    /// Whether [`next_delay`](Self::next_delay) looks at `elapsed`; when it does not (and no
    /// deadline is set), the retry loop skips reading the clock on the first attempt.
    fn uses_elapsed(&self) -> bool {
        true
    }

    /// Whether a server's Retry-After may exceed [`max_delay`](Self::max_delay).
    fn retry_after_exceeds_cap(&self) -> bool {
        false
    }
}

/// How a delay is randomised, so that many clients don't retry in lock-step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// The exact exponential delay.
    None,
    /// Uniform in `[0, delay]` (AWS "full jitter").
    Full,
    /// Uniform in `[delay/2, delay]` (AWS "equal jitter").
    Equal,
    /// Uniform in `[base, previous * 3]`, capped (AWS "decorrelated jitter").
    Decorrelated,
    /// `delay` spread by ±fraction (e.g. `Proportional(0.25)` for ±25%).
    Proportional(f64),
}

/// Exponential backoff: `base * factor^(attempt-1)`, capped, with jitter, bounded by a number
/// of attempts and an elapsed time.
///
/// ```
/// use std::time::Duration;
/// use floodgate::retry::{ExponentialBackoff, Jitter, RetryPolicy};
///
/// let policy = ExponentialBackoff::new(Duration::from_millis(100))
///     .factor(2.0)
///     .cap(Duration::from_secs(1))
///     .max_attempts(4)
///     .jitter(Jitter::None);
/// let delays: Vec<_> = (1..=4).map(|a| policy.next_delay(a, Duration::ZERO, None)).collect();
/// assert_eq!(delays, [Some(Duration::from_millis(100)), Some(Duration::from_millis(200)),
///                     Some(Duration::from_millis(400)), None]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBackoff {
    base: Duration,
    factor: f64,
    cap: Duration,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    jitter: Jitter,
    retry_after_exceeds_cap: bool,
}

impl Default for ExponentialBackoff {
    /// 100 ms doubling up to 30 s, 5 attempts, full jitter.
    fn default() -> Self {
        ExponentialBackoff::new(Duration::from_millis(100))
    }
}

impl ExponentialBackoff {
    /// Starts at `base`, doubling up to 30 s, 5 attempts, full jitter.
    pub fn new(base: Duration) -> Self {
        ExponentialBackoff {
            base,
            factor: 2.0,
            cap: Duration::from_secs(30),
            max_attempts: 5,
            max_elapsed: None,
            jitter: Jitter::Full,
            retry_after_exceeds_cap: false,
        }
    }

    /// Growth per attempt (values below 1 are taken as 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Attempts in all, the first included (`1` never retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Stop retrying once this much time has passed since the first attempt started.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    /// How delays are randomised.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Let a server's Retry-After exceed the cap (default: clamp it to the cap).
    pub fn retry_after_exceeds_cap(mut self, allowed: bool) -> Self {
        self.retry_after_exceeds_cap = allowed;
        self
    }

    fn exponential(&self, attempts: u32) -> Duration {
        let exp = self
            .factor
            .powi(attempts.saturating_sub(1).min(1_000) as i32);
        let secs = (self.base.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(secs)
    }
}

impl RetryPolicy for ExponentialBackoff {
    fn next_delay(
        &self,
        attempts: u32,
        elapsed: Duration,
        previous: Option<Duration>,
    ) -> Option<Duration> {
        if attempts >= self.max_attempts || self.max_elapsed.is_some_and(|m| elapsed >= m) {
            return None;
        }
        let d = self.exponential(attempts);
        let mut rng = rand::rng();
        let jittered = match self.jitter {
            Jitter::None => d,
            Jitter::Full => d.mul_f64(rng.random::<f64>()),
            Jitter::Equal => d / 2 + (d / 2).mul_f64(rng.random::<f64>()),
            Jitter::Decorrelated => {
                let hi = previous
                    .unwrap_or(self.base)
                    .saturating_mul(3)
                    .max(self.base);
                let span = hi - self.base;
                (self.base + span.mul_f64(rng.random::<f64>())).min(self.cap)
            }
            Jitter::Proportional(f) => {
                let f = f.clamp(0.0, 1.0);
                if f == 0.0 {
                    d
                } else {
                    d.mul_f64(1.0 + rng.random_range(-f..=f))
                }
            }
        };
        Some(jittered.min(self.cap.max(Duration::ZERO)))
    }

    fn max_delay(&self) -> Duration {
        self.cap
    }

    fn uses_elapsed(&self) -> bool {
        self.max_elapsed.is_some()
    }

    fn retry_after_exceeds_cap(&self) -> bool {
        self.retry_after_exceeds_cap
    }
}
