//! Named rate limits checked over HTTP: [`RateLimits`].
//!
//! Each `[rate_limits.NAME]` is a GCRA per key: on this server a [`KeyedRateLimiter`] (keys
//! bounded in memory, idle ones forgotten first), or with `redis_url` a [`RedisRateLimiter`]
//! shared by every server, on Redis's clock. A check takes `cost` cells for a key and says
//! what the key has left, or how long to wait.
//!
//! ```
//! use floodgate_server::limits::config::RateLimitSpec;
//! use floodgate_server::limits::rates::{RateLimits, Verdict};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let spec = RateLimitSpec { rate: 2, per: 60.0, ..RateLimitSpec::default() };
//! let limits = RateLimits::new([("per_customer".to_owned(), spec)].into(), None).unwrap();
//! assert!(matches!(limits.check("per_customer", "c-1", 1).await, Ok(Verdict::Allowed(_))));
//! assert!(matches!(limits.check("per_customer", "c-1", 1).await, Ok(Verdict::Allowed(_))));
//! assert!(matches!(limits.check("per_customer", "c-1", 1).await, Ok(Verdict::Limited { .. })));
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use floodgate::rate::redis::{RedisRateLimiter, RedisSettings};
use floodgate::rate::{Allowance, KeyedRateLimiter, NotUntil, Quota, RateError};

use super::config::{RateLimitSpec, check_name};
use super::{LimitError, Scope};

/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 256;

enum Backend {
    Local(KeyedRateLimiter<String>),
    Fleet(RedisRateLimiter),
}

struct Counts {
    allowed: AtomicU64,
    limited: AtomicU64,
    unavailable: AtomicU64,
    /// `floodgate_rate_checks_total{rate_limit, outcome}`, looked up once.
    allowed_total: metrics::Counter,
    limited_total: metrics::Counter,
}

impl Counts {
    fn new(name: &str) -> Counts {
        let total = |outcome: &'static str| metrics::counter!("floodgate_rate_checks_total", "rate_limit" => name.to_owned(), "outcome" => outcome);
        Counts {
            allowed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            allowed_total: total("allowed"),
            limited_total: total("limited"),
        }
    }
}

struct Named {
    spec: RateLimitSpec,
    quota: Quota,
    backend: Backend,
    counts: Counts,
}

/// A check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed: what the key has left.
    Allowed(Allowance),
    /// Over the limit: come back after `retry_after`; the key is full again after
    /// `reset_after`.
    Limited {
        /// How long until `cost` cells are available.
        retry_after: Duration,
        /// How long until the key's bucket is full again.
        reset_after: Duration,
    },
}

/// A snapshot of one rate limit.
#[derive(Debug, Clone)]
pub struct RateLimitSnapshot {
    /// Its name.
    pub name: String,
    /// Local, or fleet-wide through Redis.
    pub scope: Scope,
    /// Cells per key at once.
    pub burst: u32,
    /// The time a full bucket takes to refill, in seconds (the policy's window).
    pub window: Duration,
    /// Keys remembered on this server (`None` fleet-wide: Redis expires them).
    pub keys: Option<usize>,
    /// Checks allowed, limited and refused for want of Redis, on this server since start.
    pub allowed: u64,
    /// Checks over the limit.
    pub limited: u64,
    /// Checks answered 503 because Redis was unreachable (closed policy).
    pub unavailable: u64,
    /// The settings.
    pub spec: RateLimitSpec,
}

/// Every named rate limit; see the [module docs](self).
pub struct RateLimits {
    limits: BTreeMap<String, Named>,
}

impl RateLimits {
    /// The rate limits of `specs`, fleet-wide when `redis` is given; errors name the key.
    pub fn new(
        specs: BTreeMap<String, RateLimitSpec>,
        redis: Option<&str>,
    ) -> Result<RateLimits, (String, String)> {
        let mut limits = BTreeMap::new();
        for (name, spec) in specs {
            check_name(&name).map_err(|e| (format!("rate_limits.{name}"), e))?;
            let quota = spec
                .quota()
                .map_err(|e| (format!("rate_limits.{name}"), e))?;
            let backend = match redis {
                Some(url) => {
                    let settings = RedisSettings::new(url)
                        .name(format!("rate:{name}"))
                        .prefix(format!("floodgate:limits:{name}:"))
                        .failure_policy(spec.failure_policy.into());
                    Backend::Fleet(
                        RedisRateLimiter::new(settings, quota)
                            .map_err(|e| ("redis_url".to_owned(), e.to_string()))?,
                    )
                }
                None => Backend::Local(
                    KeyedRateLimiter::new(quota, spec.max_keys)
                        .map_err(|e| (format!("rate_limits.{name}.max_keys"), e.to_string()))?,
                ),
            };
            let named = Named {
                spec,
                quota,
                backend,
                counts: Counts::new(&name),
            };
            limits.insert(name, named);
        }
        Ok(RateLimits { limits })
    }

    fn named(&self, name: &str) -> Result<&Named, LimitError> {
        self.limits
            .get(name)
            .ok_or_else(|| LimitError::unknown("rate limit", name, self.limits.keys()))
    }

    /// The policy of `name`: its burst and the time a full bucket takes to refill.
    pub fn policy(&self, name: &str) -> Option<(u32, Duration)> {
        self.limits
            .get(name)
            .map(|n| (n.quota.burst_size(), window(&n.quota)))
    }

    /// Where `name` holds.
    pub fn scope(&self, name: &str) -> Option<Scope> {
        self.limits
            .get(name)
            .map(|n| Scope::of(matches!(n.backend, Backend::Fleet(_))))
    }

    /// Takes `cost` cells of `name` for `key`.
    ///
    /// # Cancel safety
    ///
    /// A fleet-wide check already sent when the future is dropped may still take its cells.
    pub async fn check(&self, name: &str, key: &str, cost: u32) -> Result<Verdict, LimitError> {
        let named = self.named(name)?;
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(LimitError::Invalid(
                "key",
                format!("give 1 to {MAX_KEY_CHARS} characters"),
            ));
        }
        let burst = named.quota.burst_size();
        if cost == 0 || cost > burst {
            return Err(LimitError::Invalid(
                "cost",
                format!("give 1 to {burst} (this rate limit's burst; more could never be allowed)"),
            ));
        }
        let taken = match &named.backend {
            Backend::Local(keyed) => keyed
                .take(&key.to_owned(), cost)
                .map_err(RateError::Limited),
            Backend::Fleet(redis) => redis.take(key, cost).await,
        };
        let verdict = match taken {
            Ok(allowance) => {
                named.counts.allowed.fetch_add(1, Relaxed);
                named.counts.allowed_total.increment(1);
                Verdict::Allowed(allowance)
            }
            Err(RateError::Limited(NotUntil::Wait(retry_after))) => {
                named.counts.limited.fetch_add(1, Relaxed);
                named.counts.limited_total.increment(1);
                // GCRA waits until the key's lead, less the window, leaves room for `cost`
                // cells; the lead itself is when the bucket is full again.
                let reset_after = (retry_after + window(&named.quota))
                    .saturating_sub(named.quota.interval() * cost);
                Verdict::Limited {
                    retry_after,
                    reset_after,
                }
            }
            Err(RateError::Unavailable { reason }) => {
                named.counts.unavailable.fetch_add(1, Relaxed);
                return Err(LimitError::RateLimitUnavailable(reason));
            }
            Err(e) => return Err(LimitError::RateLimitUnavailable(e.to_string())),
        };
        Ok(verdict)
    }

    /// A snapshot of every rate limit.
    pub fn snapshot(&self) -> Vec<RateLimitSnapshot> {
        self.limits
            .iter()
            .map(|(name, n)| RateLimitSnapshot {
                name: name.clone(),
                scope: Scope::of(matches!(n.backend, Backend::Fleet(_))),
                burst: n.quota.burst_size(),
                window: window(&n.quota),
                keys: match &n.backend {
                    Backend::Local(keyed) => Some(keyed.len()),
                    Backend::Fleet(_) => None,
                },
                allowed: n.counts.allowed.load(Relaxed),
                limited: n.counts.limited.load(Relaxed),
                unavailable: n.counts.unavailable.load(Relaxed),
                spec: n.spec.clone(),
            })
            .collect()
    }
}

/// The time a full bucket takes to refill: the policy's window.
fn window(quota: &Quota) -> Duration {
    quota.interval() * quota.burst_size()
}
