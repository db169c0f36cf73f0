//! [`BreakerRegistry`]: breakers by name, bounded, with a health report and protective mode.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::circuit::CircuitBreaker;
use super::config::BreakerConfig;
use super::engine::TransitionHook;
use super::error::BreakerConfigError;
use super::events::{BreakerEvent, State};
use super::stats::BreakerStats;
use crate::Limiter;
use crate::sync::{Mutex, lock};

/// What the registry does with a name that is not on its allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownNames {
    /// Share one catch-all breaker of this name.
    CatchAll(String),
    /// Refuse with [`RegistryError::UnknownName`].
    Reject,
}

/// Errors of the registry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is not on the allowlist and unknown names are rejected.
    #[error("no circuit breaker is configured for {0:?}; add it to the allowlist")]
    UnknownName(String),
    /// Every slot holds an open breaker, and open breakers are never evicted.
    #[error("all {max} circuit breakers are open; none can be evicted for a new name")]
    Full {
        /// `max_breakers`.
        max: usize,
    },
    /// A breaker's configuration is invalid.
    #[error("circuit breaker {name:?}: {error}")]
    Config {
        /// The breaker's name.
        name: String,
        /// What is wrong.
        error: BreakerConfigError,
    },
    /// `max_breakers` was zero.
    #[error("max_breakers must be at least 1")]
    ZeroCapacity,
    /// A protective-mode setting is out of range.
    #[error("protective mode: {0}")]
    Protective(&'static str),
}

/// Shrinks a limiter while breakers are open; see [`BreakerRegistry`].
#[derive(Debug, Clone)]
pub struct ProtectiveMode {
    limiter: Limiter,
    open_breakers: usize,
    fraction: f64,
}

impl ProtectiveMode {
    /// At `open_breakers` open breakers, run `limiter` at `fraction` (in `(0, 1]`) of the
    /// limit it has now.
    pub fn new(limiter: Limiter, open_breakers: usize, fraction: f64) -> Self {
        ProtectiveMode {
            limiter,
            open_breakers,
            fraction,
        }
    }
}

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Every breaker is closed (or disabled).
    Healthy,
    /// Some breakers are open or testing recovery.
    Degraded,
    /// Protective mode is fully engaged, or at least half the breakers are open.
    Critical,
}

/// What [`BreakerRegistry::health`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HealthReport {
    /// The overall status.
    pub status: Health,
    /// Every breaker, by name.
    pub breakers: Vec<BreakerStats>,
    /// Breakers open right now.
    pub open: usize,
    /// The protected limiter's current and base limits, if protective mode is on.
    pub protective_limit: Option<(usize, usize)>,
    /// Plain-language advice, most urgent first.
    pub recommendations: Vec<String>,
}

/// Builds a [`BreakerRegistry`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerRegistryBuilder {
    default: BreakerConfig,
    overrides: HashMap<String, BreakerConfig>,
    max_breakers: usize,
    idle_ttl: Option<Duration>,
    allowlist: Option<HashSet<String>>,
    unknown: UnknownNames,
    protective: Option<ProtectiveMode>,
}

impl Default for BreakerRegistryBuilder {
    fn default() -> Self {
        BreakerRegistryBuilder {
            default: BreakerConfig::default(),
            overrides: HashMap::new(),
            max_breakers: 1_000,
            idle_ttl: Some(Duration::from_secs(3_600)),
            allowlist: None,
            unknown: UnknownNames::CatchAll("unknown".to_owned()),
            protective: None,
        }
    }
}

impl BreakerRegistryBuilder {
    /// The settings of breakers without an override.
    pub fn default_config(mut self, config: BreakerConfig) -> Self {
        self.default = config;
        self
    }

    /// Settings for the breaker called `name`.
    pub fn config_for(mut self, name: impl Into<String>, config: BreakerConfig) -> Self {
        self.overrides.insert(name.into(), config);
        self
    }

    /// At most this many breakers (default 1,000).
    pub fn max_breakers(mut self, max: usize) -> Self {
        self.max_breakers = max;
        self
    }

    /// Drop breakers unused for this long (default 1 hour); `None` keeps them.
    pub fn idle_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// Only these names get breakers of their own; others are handled per `unknown`.
    pub fn allowlist<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        names: I,
        unknown: UnknownNames,
    ) -> Self {
        self.allowlist = Some(names.into_iter().map(Into::into).collect());
        self.unknown = unknown;
        self
    }

    /// Link a limiter to shrink while breakers are open.
    pub fn protective_mode(mut self, mode: ProtectiveMode) -> Self {
        self.protective = Some(mode);
        self
    }

    /// Checks the settings and builds the registry.
    pub fn build(self) -> Result<BreakerRegistry, RegistryError> {
        if self.max_breakers == 0 {
            return Err(RegistryError::ZeroCapacity);
        }
        let check = |name: &str, c: &BreakerConfig| {
            c.validate().map_err(|error| RegistryError::Config {
                name: name.to_owned(),
                error,
            })
        };
        check("(default)", &self.default)?;
        for (name, c) in &self.overrides {
            check(name, c)?;
        }
        let protective = match self.protective {
            None => None,
            Some(p) => {
                if p.open_breakers == 0 {
                    return Err(RegistryError::Protective(
                        "open_breakers must be at least 1",
                    ));
                }
                if !(p.fraction > 0.0 && p.fraction <= 1.0) {
                    return Err(RegistryError::Protective("fraction must be in (0, 1]"));
                }
                let base = p.limiter.limit();
                Some(Protective {
                    reduced: ((base as f64 * p.fraction).round() as usize).max(1),
                    base,
                    mode: p,
                    open: Mutex::new(0),
                })
            }
        };
        Ok(BreakerRegistry {
            inner: Arc::new(Inner {
                default: self.default,
                overrides: self.overrides,
                max_breakers: self.max_breakers,
                idle_ttl: self.idle_ttl,
                allowlist: self.allowlist,
                unknown: self.unknown,
                protective,
                breakers: Mutex::new(LruCache::unbounded()),
                events: broadcast::channel(256).0,
            }),
        })
    }
}

/// Events of a registry: every breaker's state changes, and protective mode.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    /// A breaker changed state.
    Breaker(BreakerEvent),
    /// Protective mode moved the linked limiter.
    LimitChanged {
        /// Breakers open now.
        open: usize,
        /// The limiter's new limit.
        limit: usize,
        /// Its limit without protection.
        base: usize,
    },
}

#[derive(Debug)]
struct Protective {
    mode: ProtectiveMode,
    base: usize,
    reduced: usize,
    /// Open breakers; the lock also serialises limit changes.
    open: Mutex<usize>,
}

impl Protective {
    fn limit_for(&self, open: usize) -> usize {
        let k = self.mode.open_breakers;
        let steps = open.min(k);
        self.base - (self.base - self.reduced) * steps / k
    }
}

#[derive(Debug)]
struct Entry {
    breaker: CircuitBreaker,
    last_used: Instant,
}

#[derive(Debug)]
struct Inner {
    default: BreakerConfig,
    overrides: HashMap<String, BreakerConfig>,
    max_breakers: usize,
    idle_ttl: Option<Duration>,
    allowlist: Option<HashSet<String>>,
    unknown: UnknownNames,
    protective: Option<Protective>,
    breakers: Mutex<LruCache<String, Entry>>,
    events: broadcast::Sender<RegistryEvent>,
}

/// Circuit breakers by name, bounded, with a health report and protective mode. Cloning
/// shares the registry.
///
/// Names often come from data (a host, a tenant): a registry must not grow without bound.
/// It keeps at most `max_breakers` (default 1,000); when full, the least-recently-used breaker
/// that is not open is evicted (an open breaker is never evicted: that would forget a sick
/// dependency), and breakers idle longer than `idle_ttl` (default 1 hour) are dropped. An
/// optional allowlist maps unknown names to a catch-all breaker (default `unknown`) or rejects
/// them.
///
/// **Protective mode.** Linked to a [`Limiter`], the registry shrinks the limiter while
/// breakers are open: with `k` the open-breaker threshold, the limit is
/// `base - (base - base * fraction) * min(open, k) / k` — the full reduction at `k` open
/// breakers, given back step by step as they close.
///
/// ```
/// use floodgate::breaker::{BreakerRegistry, ProtectiveMode};
/// use floodgate::Limiter;
///
/// let workers = Limiter::new(100);
/// let registry = BreakerRegistry::builder()
///     .max_breakers(500)
///     .protective_mode(ProtectiveMode::new(workers.clone(), 3, 0.2))
///     .build()
///     .unwrap();
/// let b = registry.get("payments").unwrap();
/// b.force_open();
/// assert_eq!(workers.limit(), 100 - 80 / 3); // one of three steps down to 20
/// ```
#[derive(Debug, Clone)]
pub struct BreakerRegistry {
    inner: Arc<Inner>,
}

impl BreakerRegistry {
    /// Starts building a registry.
    pub fn builder() -> BreakerRegistryBuilder {
        BreakerRegistryBuilder::default()
    }

    /// Receives every breaker state change and protective-mode change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.inner.events.subscribe()
    }

    /// The breaker for `name`, created on first use.
    pub fn get(&self, name: &str) -> Result<CircuitBreaker, RegistryError> {
        let name = self.resolve(name)?;
        let now = Instant::now();
        let mut breakers = lock(&self.inner.breakers);
        if let Some(entry) = breakers.get_mut(name) {
            entry.last_used = now;
            return Ok(entry.breaker.clone());
        }
        self.sweep_idle(&mut breakers, now);
        if breakers.len() >= self.inner.max_breakers {
            let victim = breakers
                .iter()
                .rev()
                .find(|(_, e)| !e.breaker.state().is_open())
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    breakers.pop(&k);
                    tracing::debug!(breaker = %k, "evicted least recently used circuit breaker");
                }
                None => {
                    return Err(RegistryError::Full {
                        max: self.inner.max_breakers,
                    });
                }
            }
        }
        let config = self
            .inner
            .overrides
            .get(name)
            .unwrap_or(&self.inner.default)
            .clone();
        let breaker = CircuitBreaker::with_hook(name.to_owned(), config, Some(self.hook()))
            .map_err(|error| RegistryError::Config {
                name: name.to_owned(),
                error,
            })?;
        breakers.put(
            name.to_owned(),
            Entry {
                breaker: breaker.clone(),
                last_used: now,
            },
        );
        Ok(breaker)
    }

    fn resolve<'a>(&'a self, name: &'a str) -> Result<&'a str, RegistryError> {
        match &self.inner.allowlist {
            Some(allowed) if !allowed.contains(name) => match &self.inner.unknown {
                UnknownNames::CatchAll(catch_all) => Ok(catch_all),
                UnknownNames::Reject => Err(RegistryError::UnknownName(name.to_owned())),
            },
            _ => Ok(name),
        }
    }

    fn sweep_idle(&self, breakers: &mut LruCache<String, Entry>, now: Instant) {
        let Some(ttl) = self.inner.idle_ttl else {
            return;
        };
        let idle: Vec<String> = breakers
            .iter()
            .filter(|(_, e)| {
                now.saturating_duration_since(e.last_used) > ttl && !e.breaker.state().is_open()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            breakers.pop(&k);
        }
    }

    /// Breakers held now.
    pub fn len(&self) -> usize {
        lock(&self.inner.breakers).len()
    }

    /// Whether no breaker exists yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hook(&self) -> TransitionHook {
        let inner = Arc::downgrade(&self.inner);
        Arc::new(move |event: &BreakerEvent| {
            let Some(inner) = inner.upgrade() else { return };
            let _ = inner.events.send(RegistryEvent::Breaker(event.clone()));
            let Some(p) = &inner.protective else { return };
            let delta: isize = match (event.from.is_open(), event.to.is_open()) {
                (false, true) => 1,
                (true, false) => -1,
                _ => return,
            };
            let mut open = lock(&p.open);
            *open = open.saturating_add_signed(delta);
            let limit = p.limit_for(*open);
            if p.mode.limiter.limit() != limit {
                // `limit_for` is in 1..=base, which the limiter accepts.
                let _ = p.mode.limiter.set_limit(limit);
                tracing::warn!(
                    open = *open,
                    limit,
                    base = p.base,
                    limiter = p.mode.limiter.name(),
                    "protective mode changed the limit"
                );
                let _ = inner.events.send(RegistryEvent::LimitChanged {
                    open: *open,
                    limit,
                    base: p.base,
                });
            }
        })
    }

    /// Every breaker's state with an overall status and recommendations.
    pub fn health(&self) -> HealthReport {
        let mut breakers: Vec<BreakerStats> = {
            let map = lock(&self.inner.breakers);
            map.iter().map(|(_, e)| e.breaker.stats()).collect()
        };
        breakers.sort_by(|a, b| a.name.cmp(&b.name));
        let open = breakers.iter().filter(|b| b.state.is_open()).count();
        let testing = breakers
            .iter()
            .filter(|b| b.state == State::HalfOpen)
            .count();
        let protective_limit = self
            .inner
            .protective
            .as_ref()
            .map(|p| (p.mode.limiter.limit(), p.base));
        let fully_protective = self
            .inner
            .protective
            .as_ref()
            .is_some_and(|p| open >= p.mode.open_breakers);
        let status = if fully_protective
            || (!breakers.is_empty() && open * 2 >= breakers.len() && open > 0)
        {
            Health::Critical
        } else if open + testing > 0 {
            Health::Degraded
        } else {
            Health::Healthy
        };
        let mut recommendations = Vec::new();
        if let Some((limit, base)) = protective_limit
            && limit < base
        {
            recommendations.push(format!(
                "protective mode: {open} breakers are open, so the worker limit is {limit} of {base}; fix the failing dependencies to restore it"
            ));
        }
        let mut by_time: Vec<&BreakerStats> =
            breakers.iter().filter(|b| b.state.is_open()).collect();
        by_time.sort_by_key(|b| std::cmp::Reverse(b.in_state_for));
        for b in by_time {
            let how_long = human(b.in_state_for);
            let error = b
                .last_failure
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            let line = if b.state == State::ForcedOpen {
                format!(
                    "{} was forced open {how_long} ago; reset it when the dependency is back",
                    b.name
                )
            } else {
                format!(
                    "{} has been open for {how_long} ({} re-opens in a row){error}; check the dependency",
                    b.name, b.reopens
                )
            };
            recommendations.push(line);
        }
        for b in breakers.iter().filter(|b| b.state == State::HalfOpen) {
            recommendations.push(format!(
                "{} is testing whether the dependency has recovered",
                b.name
            ));
        }
        for b in breakers
            .iter()
            .filter(|b| b.state == State::Closed && b.window_calls >= 10 && b.failure_rate >= 0.25)
        {
            recommendations.push(format!(
                "{} fails {:.0}% of calls while closed; it may open soon",
                b.name,
                b.failure_rate * 100.0
            ));
        }
        HealthReport {
            status,
            breakers,
            open,
            protective_limit,
            recommendations,
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3_600 {
        format!("{} h {} min", s / 3_600, s % 3_600 / 60)
    } else if s >= 60 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}
