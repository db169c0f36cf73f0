//! Named concurrency limits handed out over HTTP as leased permits: [`Permits`].
//!
//! Each `[limiters.NAME]` is a [`Limiter`] on this server (priorities 1-10, aging, a bounded
//! wait queue) holding the permits, within the `wait` a caller asked for. With `redis_url` the
//! permits are held in Redis instead, by a [`GlobalLimiter`] that bounds them across every
//! server, and this server's waiters line up in a [`FleetQueue`] by priority: only its head
//! asks Redis, so the most urgent waiter of each server is always the next one served there. A permit is a lease: a heartbeat
//! extends it, a release ends it, and one not heard from within its lease is taken back. A
//! caller that disconnects while waiting drops its wait, and with it any permit it was about
//! to get.
//!
//! Across servers, a free slot goes to whichever server asks first.
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
//! permits.release(&granted.permit_id).await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use floodgate::rate::redis::{GlobalLimiter, GlobalPermit, RedisSettings};
use floodgate::{Limiter, OwnedPermit, Priority, Rejected};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::book::{Book, Gone};
use super::config::{LimiterSpec, check_name, secs};
use super::fleet_queue::FleetQueue;
use super::{LimitError, Scope};

/// The longest lease a permit may ask for, in seconds.
pub const MAX_LEASE_SECS: f64 = 3_600.0;

/// The largest limit, in the settings or at run time.
pub const MAX_LIMIT: usize = 1_000_000_000;

/// The longest wait a request may name, in seconds (a limiter's `max_wait` cuts it shorter).
pub const MAX_WAIT_SECS: f64 = 300.0;

/// A lease a request names (1 to [`MAX_LEASE_SECS`] seconds), if it names one.
fn asked_lease(ttl: Option<f64>) -> Result<Option<Duration>, LimitError> {
    match ttl {
        None => Ok(None),
        Some(ttl) if (1.0..=MAX_LEASE_SECS).contains(&ttl) => {
            Ok(Some(Duration::from_secs_f64(ttl)))
        }
        Some(_) => Err(LimitError::Invalid(
            "lease_ttl",
            format!("give 1 to {MAX_LEASE_SECS} seconds"),
        )),
    }
}

/// Where a limiter's permits are held.
enum Bound {
    /// On this server.
    Local(Limiter),
    /// In Redis, for every server; this server's waiters line up in `queue`.
    Fleet {
        global: Box<GlobalLimiter>,
        queue: FleetQueue,
        /// Under the open policy with Redis away: this server alone keeps to the limit.
        unguarded: Limiter,
    },
}

/// One named limiter.
struct Named {
    name: String,
    spec: LimiterSpec,
    bound: Bound,
    granted: AtomicU64,
    expired: AtomicU64,
}

/// A permit held for an HTTP caller.
struct Held {
    limiter: Arc<Named>,
    ttl: Duration,
    permit: Option<Either>,
}

/// A local or a fleet-wide permit.
enum Either {
    Local(#[expect(dead_code, reason = "held for its drop, which frees the slot")] OwnedPermit),
    /// Released (in the background) when dropped. Granted without Redis (open policy), it
    /// holds a slot of this server's own bound too.
    Fleet(GlobalPermit, Option<OwnedPermit>),
}

impl Held {
    /// Whether a fleet-wide permit's Redis lease could not be renewed: it counts nowhere now.
    fn is_lost(&self) -> bool {
        matches!(&self.permit, Some(Either::Fleet(permit, _)) if permit.is_lost())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(Either::Fleet(permit, unguarded)) = self.permit.take() {
            drop((permit, unguarded));
            // This server's head waiter asks Redis again now.
            if let Bound::Fleet { queue, .. } = &self.limiter.bound {
                queue.freed();
            }
        }
    }
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
    /// Permits given through this server since start.
    pub granted: u64,
    /// Callers waiting on this server now.
    pub waiting: usize,
    /// Callers refused because this server's queue was full, since start.
    pub queue_full: u64,
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

impl Named {
    fn scope(&self) -> Scope {
        Scope::of(matches!(self.bound, Bound::Fleet { .. }))
    }
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
            if !(1..=MAX_LIMIT).contains(&spec.max_concurrency) {
                return Err((key("max_concurrency"), format!("give 1 to {MAX_LIMIT}")));
            }
            if !(1.0..=MAX_LEASE_SECS).contains(&spec.lease_ttl) {
                return Err((key("lease_ttl"), format!("1 to {MAX_LEASE_SECS} seconds")));
            }
            let lease = Duration::from_secs_f64(spec.lease_ttl);
            if !(spec.max_wait.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&spec.max_wait)) {
                return Err((key("max_wait"), format!("0 to {MAX_WAIT_SECS} seconds")));
            }
            let bound = match redis {
                None => {
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
                    Bound::Local(local)
                }
                Some(url) => {
                    let settings = RedisSettings::new(url)
                        .name(format!("limit:{name}"))
                        .failure_policy(spec.failure_policy.into());
                    let limit = u32::try_from(spec.max_concurrency).unwrap_or(u32::MAX);
                    let global = GlobalLimiter::new(settings, &name, limit, lease)
                        .map_err(|e| ("redis_url".to_owned(), e.to_string()))?;
                    let unguarded = Limiter::builder()
                        .name(format!("limit:{name}:unguarded"))
                        .max_concurrency(spec.max_concurrency)
                        .max_queue(0)
                        .build()
                        .map_err(|e| (key("max_concurrency"), e.to_string()))?;
                    Bound::Fleet {
                        global: Box::new(global),
                        queue: FleetQueue::new(spec.max_queue),
                        unguarded,
                    }
                }
            };
            let named = Named {
                name: name.clone(),
                spec,
                bound,
                granted: AtomicU64::new(0),
                expired: AtomicU64::new(0),
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
        if !(wait.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&wait)) {
            return Err(LimitError::Invalid(
                "wait",
                format!("give 0 to {MAX_WAIT_SECS} seconds"),
            ));
        }
        // A longer wait than the limiter allows is cut to it: the caller asks again.
        let wait = wait.min(named.spec.max_wait);
        let lease = asked_lease(ask.lease_ttl)?
            .unwrap_or_else(|| Duration::from_secs_f64(named.spec.lease_ttl));
        let deadline = Instant::now() + Duration::from_secs_f64(wait);
        let (permit, enforced) = match &named.bound {
            Bound::Local(local) => {
                // `timeout_at` polls the wait once before looking at the clock: a free
                // permit is taken even with no wait.
                let waited =
                    tokio::time::timeout_at(deadline, local.acquire_owned_with(priority)).await;
                match waited {
                    Ok(Ok(permit)) => (Either::Local(permit), true),
                    Ok(Err(Rejected::QueueFull { capacity })) => {
                        return Err(LimitError::QueueFull(capacity));
                    }
                    Ok(Err(Rejected::Closed)) => return Err(LimitError::Closing),
                    Ok(Err(_)) | Err(_) => return Err(LimitError::AcquireTimeout(wait)),
                }
            }
            Bound::Fleet {
                global,
                queue,
                unguarded,
            } => {
                let permit = queue
                    .acquire(global, priority.get(), deadline, wait)
                    .await?;
                if permit.is_unguarded() {
                    // Let through by the open policy: within this server's own bound only.
                    let Ok(slot) = unguarded.try_acquire_owned() else {
                        return Err(LimitError::AcquireTimeout(wait));
                    };
                    (Either::Fleet(permit, Some(slot)), false)
                } else {
                    (Either::Fleet(permit, None), true)
                }
            }
        };
        named.granted.fetch_add(1, Relaxed);
        let held = Held {
            limiter: named.clone(),
            ttl: lease,
            permit: Some(permit),
        };
        let permit_id = self.book.insert(held, Instant::now() + lease);
        Ok(Granted {
            permit_id,
            lease,
            scope: named.scope(),
            enforced,
        })
    }

    /// Extends a permit's lease by its own TTL (or `lease_ttl` seconds); the new lease.
    pub fn heartbeat(
        &self,
        permit_id: &str,
        lease_ttl: Option<f64>,
    ) -> Result<Duration, LimitError> {
        let lease = asked_lease(lease_ttl)?;
        // A fleet-wide permit whose Redis lease could not be renewed (Redis away for longer
        // than the lease) no longer counts anywhere: it is lost, not extended.
        if self.book.expire_if(permit_id, Held::is_lost) {
            tracing::warn!(%permit_id, "a permit's fleet-wide lease was lost in Redis");
            return Err(LimitError::PermitLost(format!(
                "the permit {permit_id:?} was lost: its fleet-wide lease could not be renewed \
                 in Redis; acquire a new one"
            )));
        }
        let now = Instant::now();
        let deadline = self
            .book
            .extend(permit_id, |held| Some(now + lease.unwrap_or(held.ttl)))
            .map_err(|gone| LimitError::permit_gone(gone, permit_id))?;
        Ok(deadline - now)
    }

    /// Releases a permit; fleet-wide, once Redis has the slot back. Releasing one already
    /// released again is a success; one whose lease ran out answers
    /// [`LimitError::PermitLost`] and frees nothing.
    pub async fn release(&self, permit_id: &str) -> Result<(), LimitError> {
        let mut held = match self.book.take(permit_id, |_| true) {
            Ok(held) => held,
            Err(Gone::Finished) => return Ok(()),
            Err(gone) => return Err(LimitError::permit_gone(gone, permit_id)),
        };
        if let Some(Either::Fleet(permit, unguarded)) = held.permit.take() {
            drop(unguarded);
            // In a task of its own: a caller that goes away mid-release does not stop it.
            let limiter = held.limiter.clone();
            let release = tokio::spawn(async move {
                if let Err(e) = permit.release().await {
                    // Its lease ends it within its TTL.
                    tracing::warn!(limiter = %limiter.name, error = %e, "a permit's release did not reach Redis");
                }
                if let Bound::Fleet { queue, .. } = &limiter.bound {
                    queue.freed();
                }
            });
            let _ = release.await;
        }
        Ok(())
    }

    /// Changes a limit at run time (fleet-wide: for every server).
    pub async fn set_limit(&self, name: &str, limit: usize) -> Result<(), LimitError> {
        let named = self.named(name)?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(LimitError::Invalid(
                "max_concurrency",
                format!("give 1 to {MAX_LIMIT}"),
            ));
        }
        match &named.bound {
            Bound::Local(local) => local
                .set_limit(limit)
                .map_err(|e| LimitError::Invalid("max_concurrency", e.to_string()))?,
            Bound::Fleet { global, queue, .. } => {
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                global
                    .set_limit(limit)
                    .await
                    .map_err(|e| LimitError::LimiterUnavailable(e.to_string()))?;
                // A larger limit may have room for this server's waiters now.
                queue.freed();
            }
        }
        tracing::info!(limiter = %name, limit, "limit changed");
        Ok(())
    }

    /// A snapshot of every limiter (fleet counts read from Redis, if any).
    pub async fn snapshot(&self) -> Vec<LimiterSnapshot> {
        let here = self.book.count_by(|h| h.limiter.name.clone());
        let mut out = Vec::with_capacity(self.limiters.len());
        for (name, named) in &self.limiters {
            let (limit, held_fleet, waiting, queue_full) = match &named.bound {
                Bound::Local(local) => {
                    let stats = local.stats();
                    (stats.limit, None, stats.queued, stats.rejected.queue_full)
                }
                Bound::Fleet { global, queue, .. } => {
                    let (held, limit) = match global.held().await {
                        Ok((held, limit)) => (Some(held), limit),
                        Err(_) => (None, global.limit()),
                    };
                    (limit as usize, held, queue.len(), queue.refused_full())
                }
            };
            out.push(LimiterSnapshot {
                name: name.clone(),
                scope: named.scope(),
                limit,
                held_here: here.get(name).copied().unwrap_or(0),
                held_fleet,
                granted: named.granted.load(Relaxed),
                waiting,
                queue_full,
                expired: named.expired.load(Relaxed),
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
            held.limiter.expired.fetch_add(1, Relaxed);
            metrics::counter!("floodgate_permits_expired_total", "limiter" => held.limiter.name.clone())
                .increment(1);
            tracing::info!(limiter = %held.limiter.name, "a permit's lease ran out: taken back");
        };
        self.book.reap(expired, stop).await;
        drop(self.book.drain());
    }
}
