//! Named concurrency limits handed out over HTTP as leased permits: [`Permits`].
//!
//! Each `[limiters.NAME]` is a [`Limiter`] on this server (priorities 1-10, aging, a bounded
//! wait queue) and, with `redis_url`, also a [`GlobalLimiter`] that bounds the permits held
//! across every server. A caller waits in the local priority queue first, then (fleet-wide)
//! for a slot in Redis, within the `wait` it asked for. A permit is a lease: a heartbeat
//! extends it, a release ends it, and one not heard from within its lease is taken back. A
//! caller that disconnects while waiting drops its wait, and with it any permit it was about
//! to get.
//!
//! Priorities order the waiters of one server; across servers, a free slot goes to whichever
//! server asks first (each polls Redis while it has waiters).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use floodgate_server::limits::config::LimiterSpec;
//! use floodgate_server::limits::permits::{Ask, Permits};
//!
//! let spec = LimiterSpec { max_concurrency: 1, ..LimiterSpec::default() };
//! let permits = Permits::new([("llm".to_owned(), spec)].into(), None).unwrap();
//! let granted = permits.acquire("llm", Ask::default()).await.unwrap();
//! assert!(permits.acquire("llm", Ask::default()).await.is_err()); // wait 0: at once
//! permits.release(&granted.permit_id).unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use floodgate::rate::RateError;
use floodgate::rate::redis::{GlobalLimiter, GlobalPermit, RedisSettings};
use floodgate::{Limiter, LimiterStats, OwnedPermit, Priority, Rejected};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::book::{Book, Gone};
use super::config::{LimiterSpec, check_name, secs};
use super::{LimitError, Scope};

/// The longest lease a permit may ask for, in seconds.
pub const MAX_LEASE_SECS: f64 = 3_600.0;

/// One named limiter.
struct Named {
    name: String,
    spec: LimiterSpec,
    local: Limiter,
    fleet: Option<GlobalLimiter>,
    expired: std::sync::atomic::AtomicU64,
}

/// A permit held for an HTTP caller.
struct Held {
    limiter: Arc<Named>,
    ttl: Duration,
    _local: OwnedPermit,
    /// Released (in the background) when dropped.
    _fleet: Option<GlobalPermit>,
}

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    /// 1 (lowest) to 10 (highest); default 5.
    pub priority: Option<u8>,
    /// Seconds to wait for a permit (default 0: answer at once).
    pub wait: Option<f64>,
    /// Seconds the permit lives without a heartbeat (default: the limiter's `lease_ttl`).
    pub lease_ttl: Option<f64>,
}

/// A permit given.
#[derive(Debug, Clone)]
pub struct Granted {
    /// Its id, for heartbeats and the release.
    pub permit_id: String,
    /// How long it lives without a heartbeat.
    pub lease: Duration,
    /// Whether it counts across the fleet (Redis) or on this server only.
    pub scope: Scope,
    /// `false` when Redis could not be reached and the open policy let it through: it counts
    /// on this server only.
    pub enforced: bool,
}

/// A snapshot of one limiter.
#[derive(Debug, Clone)]
pub struct LimiterSnapshot {
    /// Its name.
    pub name: String,
    /// Local, or fleet-wide through Redis.
    pub scope: Scope,
    /// The limit in force (fleet-wide: as last read from Redis).
    pub limit: usize,
    /// Permits held through this server.
    pub held_here: usize,
    /// Permits held across the fleet (`None` locally, or when Redis did not answer).
    pub held_fleet: Option<u32>,
    /// The local limiter's counters.
    pub stats: LimiterStats,
    /// Permits taken back because their lease ran out.
    pub expired: u64,
    /// The settings.
    pub spec: LimiterSpec,
}

/// Every named limiter and the permits held through them; see the [module docs](self).
pub struct Permits {
    limiters: BTreeMap<String, Arc<Named>>,
    book: Book<Held>,
}

impl Permits {
    /// The limiters of `specs`, fleet-wide when `redis` is given. Checks every setting and
    /// names the bad one (`limiters.NAME.key`).
    pub fn new(
        specs: BTreeMap<String, LimiterSpec>,
        redis: Option<&str>,
    ) -> Result<Permits, (String, String)> {
        let mut limiters = BTreeMap::new();
        for (name, spec) in specs {
            let key = |k: &str| format!("limiters.{name}.{k}");
            check_name(&name).map_err(|e| (format!("limiters.{name}"), e))?;
            if spec.max_concurrency == 0 {
                return Err((key("max_concurrency"), "give at least 1".into()));
            }
            let lease = secs(spec.lease_ttl).map_err(|e| (key("lease_ttl"), e))?;
            if spec.lease_ttl > MAX_LEASE_SECS {
                return Err((
                    key("lease_ttl"),
                    format!("at most {MAX_LEASE_SECS} seconds"),
                ));
            }
            if !(spec.max_wait.is_finite() && (0.0..=300.0).contains(&spec.max_wait)) {
                return Err((key("max_wait"), "0 to 300 seconds".into()));
            }
            let mut builder = Limiter::builder()
                .name(format!("limit:{name}"))
                .max_concurrency(spec.max_concurrency)
                .max_queue(spec.max_queue);
            if let Some(aging) = spec.aging {
                builder = builder.aging(secs(aging).map_err(|e| (key("aging"), e))?);
            }
            let local = builder
                .build()
                .map_err(|e| (key("max_concurrency"), e.to_string()))?;
            let fleet = match redis {
                Some(url) => {
                    let settings = RedisSettings::new(url)
                        .name(format!("limit:{name}"))
                        .failure_policy(spec.failure_policy.into());
                    let limit = u32::try_from(spec.max_concurrency).unwrap_or(u32::MAX);
                    let global = GlobalLimiter::new(settings, &name, limit, lease)
                        .map_err(|e| ("redis_url".to_owned(), e.to_string()))?;
                    Some(global)
                }
                None => None,
            };
            let named = Named {
                name: name.clone(),
                spec,
                local,
                fleet,
                expired: Default::default(),
            };
            limiters.insert(name, Arc::new(named));
        }
        Ok(Permits {
            limiters,
            book: Book::new(),
        })
    }

    fn named(&self, name: &str) -> Result<&Arc<Named>, LimitError> {
        self.limiters
            .get(name)
            .ok_or_else(|| LimitError::unknown("limiter", name, self.limiters.keys()))
    }

    /// Waits up to `ask.wait` for a permit of `name` (see the [module docs](self)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait leaves no permit behind (a fleet-wide command already sent
    /// may hold a Redis slot until its lease's TTL).
    pub async fn acquire(&self, name: &str, ask: Ask) -> Result<Granted, LimitError> {
        let named = self.named(name)?;
        let priority = Priority::new(ask.priority.unwrap_or(5)).map_err(|_| {
            LimitError::Invalid("priority", "give 1 (lowest) to 10 (highest)".into())
        })?;
        let wait = ask.wait.unwrap_or(0.0);
        if !(wait.is_finite() && (0.0..=named.spec.max_wait).contains(&wait)) {
            return Err(LimitError::Invalid(
                "wait",
                format!(
                    "give 0 to {} seconds (this limiter's max_wait)",
                    named.spec.max_wait
                ),
            ));
        }
        let lease = match ask.lease_ttl {
            None => secs(named.spec.lease_ttl).expect("checked at start"),
            Some(ttl) if (1.0..=MAX_LEASE_SECS).contains(&ttl) => Duration::from_secs_f64(ttl),
            Some(_) => {
                return Err(LimitError::Invalid(
                    "lease_ttl",
                    format!("give 1 to {MAX_LEASE_SECS} seconds"),
                ));
            }
        };
        let deadline = Instant::now() + Duration::from_secs_f64(wait);
        // `timeout_at` polls the wait once before looking at the clock: a free permit is
        // taken even with no wait.
        let local =
            match tokio::time::timeout_at(deadline, named.local.acquire_owned_with(priority)).await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(Rejected::QueueFull { capacity })) => {
                    return Err(LimitError::QueueFull(capacity));
                }
                Ok(Err(Rejected::Closed)) => return Err(LimitError::Closing),
                Ok(Err(_)) | Err(_) => return Err(LimitError::AcquireTimeout(wait)),
            };
        let (fleet, enforced) = match &named.fleet {
            None => (None, true),
            Some(global) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match global.acquire(left).await {
                    Ok(Some(permit)) => {
                        let enforced = !permit.is_unguarded();
                        (Some(permit), enforced)
                    }
                    Ok(None) => return Err(LimitError::AcquireTimeout(wait)),
                    Err(RateError::Unavailable { reason }) => {
                        return Err(LimitError::LimiterUnavailable(reason));
                    }
                    Err(e) => return Err(LimitError::LimiterUnavailable(e.to_string())),
                }
            }
        };
        let held = Held {
            limiter: named.clone(),
            ttl: lease,
            _local: local,
            _fleet: fleet,
        };
        let permit_id = self.book.insert(held, Instant::now() + lease);
        Ok(Granted {
            permit_id,
            lease,
            scope: Scope::of(named.fleet.is_some()),
            enforced,
        })
    }

    /// Extends a permit's lease by its own TTL (or `lease_ttl` seconds); the new lease.
    pub fn heartbeat(
        &self,
        permit_id: &str,
        lease_ttl: Option<f64>,
    ) -> Result<Duration, LimitError> {
        let lease = match lease_ttl {
            None => None,
            Some(ttl) if (1.0..=MAX_LEASE_SECS).contains(&ttl) => {
                Some(Duration::from_secs_f64(ttl))
            }
            Some(_) => {
                return Err(LimitError::Invalid(
                    "lease_ttl",
                    format!("give 1 to {MAX_LEASE_SECS} seconds"),
                ));
            }
        };
        let now = Instant::now();
        let deadline = self
            .book
            .extend(permit_id, |held| Some(now + lease.unwrap_or(held.ttl)))
            .map_err(|gone| LimitError::permit_gone(gone, permit_id))?;
        Ok(deadline - now)
    }

    /// Releases a permit. Releasing one already released again is a success; one whose lease
    /// ran out answers [`LimitError::PermitLost`] and frees nothing.
    pub fn release(&self, permit_id: &str) -> Result<(), LimitError> {
        match self.book.take(permit_id, |_| true) {
            Ok(held) => {
                drop(held);
                Ok(())
            }
            Err(Gone::Finished) => Ok(()),
            Err(gone) => Err(LimitError::permit_gone(gone, permit_id)),
        }
    }

    /// Changes a limit at run time (fleet-wide: for every server).
    pub async fn set_limit(&self, name: &str, limit: usize) -> Result<(), LimitError> {
        let named = self.named(name)?;
        named
            .local
            .set_limit(limit)
            .map_err(|e| LimitError::Invalid("max_concurrency", e.to_string()))?;
        if let Some(global) = &named.fleet {
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            global
                .set_limit(limit)
                .await
                .map_err(|e| LimitError::LimiterUnavailable(e.to_string()))?;
        }
        tracing::info!(limiter = %name, limit, "limit changed");
        Ok(())
    }

    /// A snapshot of every limiter (fleet counts read from Redis, if any).
    pub async fn snapshot(&self) -> Vec<LimiterSnapshot> {
        let here = self.book.count_by(|h| h.limiter.name.clone());
        let mut out = Vec::with_capacity(self.limiters.len());
        for (name, named) in &self.limiters {
            let (held_fleet, limit) = match &named.fleet {
                None => (None, named.local.limit()),
                Some(global) => match global.held().await {
                    Ok((held, limit)) => {
                        // Another server's change reaches this one's queue here too.
                        let limit = limit as usize;
                        if limit != named.local.limit() {
                            let _ = named.local.set_limit(limit);
                        }
                        (Some(held), limit)
                    }
                    Err(_) => (None, global.limit() as usize),
                },
            };
            out.push(LimiterSnapshot {
                name: name.clone(),
                scope: Scope::of(named.fleet.is_some()),
                limit,
                held_here: here.get(name).copied().unwrap_or(0),
                held_fleet,
                stats: named.local.stats(),
                expired: named.expired.load(std::sync::atomic::Ordering::Relaxed),
                spec: named.spec.clone(),
            });
        }
        out
    }

    /// Whether `name` is a limiter.
    pub fn contains(&self, name: &str) -> bool {
        self.limiters.contains_key(name)
    }

    /// Takes back permits whose lease ran out, until `stop`; then releases every permit held.
    pub async fn run(&self, stop: CancellationToken) {
        let expired = |held: Held| {
            held.limiter
                .expired
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("floodgate_permits_expired_total", "limiter" => held.limiter.name.clone())
                .increment(1);
            tracing::info!(limiter = %held.limiter.name, "a permit's lease ran out: taken back");
        };
        self.book.reap(expired, stop).await;
        drop(self.book.drain());
    }
}
