//! Distributed limits in Redis: [`RedisRateLimiter`] (GCRA shared by every node) and
//! [`GlobalLimiter`] (N concurrency permits shared by every node, each a lease).
//!
//! Both run their logic atomically in Lua scripts (`EVALSHA`, falling back to `EVAL` when the
//! script is not cached) and read Redis's own clock (`TIME`), so node clocks don't matter. They
//! use the `redis` crate's connection manager: connect and command timeouts, reconnection with
//! exponential backoff. When Redis is slow or down, the [`FailurePolicy`] decides: `Open` lets
//! the call through and counts `floodgate_rate_redis_errors_total`, `Closed` refuses with
//! [`RateError::Unavailable`]. Connection state changes are logged and counted.
//!
//! Keys live under a configurable prefix and expire when idle: a rate key when its bucket is
//! full again, the permit set when no permit has been renewed for two TTLs.
//!
//! ```no_run
//! use std::time::Duration;
//! use floodgate::rate::Quota;
//! use floodgate::rate::redis::{FailurePolicy, GlobalLimiter, RedisRateLimiter, RedisSettings};
//!
//! # async fn demo() -> Result<(), floodgate::rate::RateError> {
//! let settings = RedisSettings::new("redis://127.0.0.1:6379").failure_policy(FailurePolicy::Closed);
//! let per_tenant = RedisRateLimiter::new(settings.clone(), Quota::per_second(50)?)?;
//! per_tenant.check("tenant-42").await?; // Limited(..) or Unavailable { .. } otherwise
//!
//! let workers = GlobalLimiter::new(settings, "llm-calls", 100, Duration::from_secs(30))?;
//! if let Some(_permit) = workers.acquire(Duration::from_secs(5)).await? {
//!     // at most 100 of these run across the whole fleet
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU32,
    Ordering::{AcqRel, Acquire, Release},
};
use std::time::Duration;

use metrics::{Counter, Gauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::allowance::Allowance;
use super::error::{NotUntil, RateError};
use super::gcra::Quota;

/// What to do when Redis can't answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Allow the call (availability first) and count the error.
    Open,
    /// Refuse with [`RateError::Unavailable`] (protection first).
    Closed,
}

/// Connection settings shared by the Redis-backed limiters.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key (default `floodgate:`).
    pub prefix: String,
    /// Name for metrics labels and logs.
    pub name: String,
    /// What to do when Redis can't answer (default `Closed`).
    pub failure_policy: FailurePolicy,
    /// How long to wait for a connection (default 1 s).
    pub connect_timeout: Duration,
    /// How long to wait for a command's answer (default 250 ms).
    pub command_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: "floodgate:".to_owned(),
            name: "redis".to_owned(),
            failure_policy: FailurePolicy::Closed,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
        }
    }

    /// Key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Name for metrics and logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Failure policy.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }
}

/// A connection plus the failure bookkeeping both limiters share.
#[derive(Clone)]
struct Link {
    conn: ConnectionManager,
    settings: Arc<RedisSettings>,
    healthy: Arc<AtomicBool>,
    errors: Counter,
    connected: Gauge,
}

impl Link {
    fn new(settings: RedisSettings) -> Result<Self, RateError> {
        let client =
            Client::open(settings.url.as_str()).map_err(|e| RateError::Config(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        // Lazy: a node starts (and follows its failure policy) while Redis is down.
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RateError::Config(e.to_string()))?;
        let errors = metrics::counter!("floodgate_rate_redis_errors_total", "limiter" => settings.name.clone());
        let connected =
            metrics::gauge!("floodgate_rate_redis_connected", "limiter" => settings.name.clone());
        Ok(Link {
            conn,
            settings: Arc::new(settings),
            healthy: Arc::new(AtomicBool::new(true)),
            errors,
            connected,
        })
    }

    /// Runs a script with the command timeout, tracking connection health.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        let mut conn = self.conn.clone();
        let result = tokio::time::timeout(
            self.settings.command_timeout,
            inv.invoke_async::<T>(&mut conn),
        )
        .await;
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {:?}",
                self.settings.command_timeout
            )),
        };
        match &result {
            Ok(_) => {
                if !self.healthy.swap(true, AcqRel) {
                    tracing::info!(limiter = %self.settings.name, "Redis reachable again");
                    self.connected.set(1.0);
                }
            }
            Err(e) => {
                self.errors.increment(1);
                if self.healthy.swap(false, AcqRel) {
                    tracing::warn!(limiter = %self.settings.name, error = %e, policy = ?self.settings.failure_policy, "Redis unavailable");
                    self.connected.set(0.0);
                }
            }
        }
        result
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Acquire)
    }
}

const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tau = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval * n
if new - now > tau then
  return {0, new - tau - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return {1, new - now}
"#;

/// GCRA shared by every node through Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisRateLimiter {
    link: Link,
    quota: Quota,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("name", &self.link.settings.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter of `quota` per key, in the Redis of `settings`. Does not connect yet.
    pub fn new(settings: RedisSettings, quota: Quota) -> Result<Self, RateError> {
        Ok(RedisRateLimiter {
            link: Link::new(settings)?,
            quota,
            script: Arc::new(Script::new(GCRA)),
        })
    }

    /// Takes one cell for `key`.
    ///
    /// # Cancel safety
    ///
    /// As [`check_n`](Self::check_n).
    pub async fn check(&self, key: &str) -> Result<(), RateError> {
        self.check_n(key, 1).await
    }

    /// Takes `n` cells for `key`.
    ///
    /// # Cancel safety
    ///
    /// Nothing is left behind locally, but a command already sent when the future is dropped
    /// may still take its cells in Redis, as if the call had been allowed.
    pub async fn check_n(&self, key: &str, n: u32) -> Result<(), RateError> {
        self.take(key, n).await.map(|_| ())
    }

    /// Takes `n` cells for `key`, and says what the key has left (its remaining cells and
    /// when its bucket is full again). Under `FailurePolicy::Open` with Redis unreachable the
    /// answer is an allowance with `enforced: false` and the whole burst remaining.
    ///
    /// # Cancel safety
    ///
    /// As [`check_n`](Self::check_n).
    pub async fn take(&self, key: &str, n: u32) -> Result<Allowance, RateError> {
        if n > self.quota.burst {
            return Err(RateError::Limited(NotUntil::Never {
                burst: self.quota.burst,
            }));
        }
        let interval_us = (self.quota.interval / 1_000).max(1);
        let mut inv = self
            .script
            .key(format!("{}rate:{key}", self.link.settings.prefix));
        inv.arg(interval_us).arg(self.quota.burst).arg(n);
        match self.link.invoke::<(i64, i64)>(&mut inv).await {
            Ok((1, ahead_us)) => Ok(Allowance::after(
                &self.quota,
                Duration::from_micros(ahead_us.max(0) as u64),
            )),
            Ok((_, wait_us)) => Err(RateError::Limited(NotUntil::Wait(Duration::from_micros(
                wait_us.max(0) as u64,
            )))),
            Err(reason) => match self.link.settings.failure_policy {
                FailurePolicy::Open => Ok(Allowance {
                    remaining: self.quota.burst,
                    reset_after: Duration::ZERO,
                    enforced: false,
                }),
                FailurePolicy::Closed => Err(RateError::Unavailable { reason }),
            },
        }
    }

    /// The quota of each key.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Whether the last command reached Redis.
    pub fn is_healthy(&self) -> bool {
        self.link.healthy()
    }
}

/// The limit in force: a run-time override (`set_limit`) stored as `configured:override`, which
/// applies only while the nodes are configured with the limit it overrode.
const LIMIT: &str = r#"
local function limit_of(key, configured)
  local stored = redis.call('GET', key)
  if stored then
    local base, override = string.match(stored, '^(%d+):(%d+)$')
    if base == configured then return tonumber(override) end
  end
  return tonumber(configured)
end
"#;

const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = limit_of(KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return {1, limit, held + 1}
end
return {0, limit, held}
"#;

const HELD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {redis.call('ZCOUNT', KEYS[1], now + 1, '+inf'), limit_of(KEYS[2], ARGV[1])}
"#;

const RENEW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"#;

const RELEASE: &str = "return redis.call('ZREM', KEYS[1], ARGV[1])";

/// A concurrency limit shared by every node: at most `limit` [`GlobalPermit`]s exist across
/// the fleet. Each permit is a lease with a TTL, renewed while held, so the permit of a crashed
/// holder comes back by itself after the TTL.
#[derive(Clone)]
pub struct GlobalLimiter {
    link: Link,
    key: String,
    limit_key: String,
    /// The configured limit.
    limit: u32,
    /// The limit in force as last read from Redis (a run-time override, or `limit`).
    in_force: Arc<AtomicU32>,
    /// Permits held fleet-wide as of the last acquire.
    last_held: Arc<AtomicU32>,
    ttl: Duration,
    scripts: Arc<Scripts>,
}

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    held: Script,
}

impl std::fmt::Debug for GlobalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimiter")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// An acquire Redis has not answered: dropped armed, it removes the lease it may have taken
/// (in the background, best effort; removing a lease that was never taken changes nothing).
struct Unanswered<'a> {
    limiter: &'a GlobalLimiter,
    id: Option<String>,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let limiter = self.limiter.clone();
            rt.spawn(async move {
                let mut inv = limiter.scripts.release.key(&limiter.key);
                inv.arg(&id);
                let _ = limiter.link.invoke::<i64>(&mut inv).await;
            });
        }
    }
}

/// A permit of a [`GlobalLimiter`]; released when dropped (inside a Tokio runtime).
#[derive(Debug)]
#[must_use = "the permit is released as soon as it is dropped"]
pub struct GlobalPermit {
    limiter: Option<GlobalLimiter>,
    id: String,
    lost: Arc<AtomicBool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl GlobalPermit {
    /// Whether the lease was lost (not renewed in time, e.g. during a Redis outage): the
    /// permit no longer counts against the limit and the holder should wrap up.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Acquire)
    }

    /// Whether this permit was granted without Redis under `FailurePolicy::Open`.
    pub fn is_unguarded(&self) -> bool {
        self.limiter.is_none()
    }

    /// Releases the permit and waits until Redis has the slot back, so the next acquire
    /// anywhere can have it (dropping the permit releases it in the background instead).
    ///
    /// # Cancel safety
    ///
    /// Dropped before Redis answered, the release may or may not have been applied; if not,
    /// the slot comes back when the lease's TTL passes.
    pub async fn release(mut self) -> Result<(), RateError> {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let Some(limiter) = self.limiter.take() else {
            return Ok(());
        };
        let mut inv = limiter.scripts.release.key(&limiter.key);
        inv.arg(&self.id);
        limiter
            .link
            .invoke::<i64>(&mut inv)
            .await
            .map(drop)
            .map_err(|reason| RateError::Unavailable { reason })
    }
}

impl Drop for GlobalPermit {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Some(limiter) = self.limiter.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let id = std::mem::take(&mut self.id);
            rt.spawn(async move {
                let mut inv = limiter.scripts.release.key(&limiter.key);
                inv.arg(&id);
                let _ = limiter.link.invoke::<i64>(&mut inv).await;
            });
        }
    }
}

impl GlobalLimiter {
    /// At most `limit` permits under `name` across every node, each a lease of `ttl`.
    pub fn new(
        settings: RedisSettings,
        name: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<Self, RateError> {
        if limit == 0 {
            return Err(RateError::InvalidQuota("limit must be at least 1"));
        }
        if ttl < Duration::from_millis(30) {
            return Err(RateError::InvalidQuota("lease ttl must be at least 30 ms"));
        }
        let key = format!("{}permits:{name}", settings.prefix);
        Ok(GlobalLimiter {
            link: Link::new(settings)?,
            limit_key: format!("{key}:limit"),
            key,
            limit,
            in_force: Arc::new(AtomicU32::new(limit)),
            last_held: Arc::new(AtomicU32::new(0)),
            ttl,
            scripts: Arc::new(Scripts {
                acquire: Script::new(&format!("{LIMIT}{ACQUIRE}")),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                held: Script::new(&format!("{LIMIT}{HELD}")),
            }),
        })
    }

    /// Takes a permit if fewer than `limit` are held fleet-wide; `Ok(None)` when none is free.
    ///
    /// # Cancel safety
    ///
    /// A permit returned is released by its drop. A command already sent when the future is
    /// dropped (or whose answer timed out) may still take a lease in Redis; its removal is
    /// then sent in the background, and should that fail too, nobody renews the lease and the
    /// slot comes back when its TTL passes.
    pub async fn try_acquire(&self) -> Result<Option<GlobalPermit>, RateError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let ttl_ms = self.ttl.as_millis() as u64;
        let mut inv = self.scripts.acquire.key(&self.key);
        inv.key(&self.limit_key)
            .arg(self.limit)
            .arg(ttl_ms)
            .arg(&id);
        // Until Redis has answered, the lease may or may not exist: if the answer never comes
        // (a timeout, or this future dropped), remove it, so no slot is held by nobody.
        let mut unsure = Unanswered {
            limiter: self,
            id: Some(id.clone()),
        };
        let answer = self.link.invoke::<(i64, u32, u32)>(&mut inv).await;
        match answer {
            Ok((granted, limit, held)) => {
                unsure.id = None;
                self.in_force.store(limit, Release);
                self.last_held.store(held, Release);
                Ok((granted == 1).then(|| self.guard(id)))
            }
            Err(reason) => match self.link.settings.failure_policy {
                FailurePolicy::Open => Ok(Some(GlobalPermit {
                    limiter: None,
                    id,
                    lost: Arc::new(AtomicBool::new(false)),
                    renewer: None,
                })),
                FailurePolicy::Closed => Err(RateError::Unavailable { reason }),
            },
        }
    }

    /// Waits up to `timeout` for a permit, polling with a growing pause (5 ms to 100 ms).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a permit taken just before cancellation is released by its drop. A command
    /// in flight when the future is dropped may leave an unowned lease, as with
    /// [`try_acquire`](Self::try_acquire), until its TTL passes.
    pub async fn acquire(&self, timeout: Duration) -> Result<Option<GlobalPermit>, RateError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(p) = self.try_acquire().await? {
                return Ok(Some(p));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let jitter = pause.mul_f64(rand::random::<f64>() * 0.5);
            tokio::time::sleep((pause + jitter).min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn guard(&self, id: String) -> GlobalPermit {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let limiter = self.clone();
            let id = id.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                let every = limiter.ttl / 3;
                loop {
                    tokio::time::sleep(every).await;
                    let mut inv = limiter.scripts.renew.key(&limiter.key);
                    inv.arg(limiter.ttl.as_millis() as u64).arg(&id);
                    if let Ok(0) = limiter.link.invoke::<i64>(&mut inv).await {
                        tracing::warn!(key = %limiter.key, "global permit lease lost");
                        lost.store(true, Release);
                        return;
                    }
                }
            })
        };
        GlobalPermit {
            limiter: Some(self.clone()),
            id,
            lost,
            renewer: Some(renewer),
        }
    }

    /// Permits held fleet-wide now (expired leases not counted), and the limit in force.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn held(&self) -> Result<(u32, u32), RateError> {
        let mut inv = self.scripts.held.key(&self.key);
        inv.key(&self.limit_key).arg(self.limit);
        let (held, limit) = self
            .link
            .invoke::<(u32, u32)>(&mut inv)
            .await
            .map_err(|reason| RateError::Unavailable { reason })?;
        self.in_force.store(limit, Release);
        Ok((held, limit))
    }

    /// Changes the limit for every node at once (stored in Redis beside the permits). The
    /// change holds while the nodes are configured with the limit it overrides: a node started
    /// with another configured limit uses its own, so a changed configuration wins over an old
    /// run-time change. Shrinking never revokes a held permit.
    ///
    /// # Cancel safety
    ///
    /// A command already sent when the future is dropped may still apply.
    pub async fn set_limit(&self, limit: u32) -> Result<(), RateError> {
        if limit == 0 {
            return Err(RateError::InvalidQuota("limit must be at least 1"));
        }
        let script = Script::new("redis.call('SET', KEYS[1], ARGV[1]) return 1");
        let mut inv = script.key(&self.limit_key);
        inv.arg(format!("{}:{limit}", self.limit));
        self.link
            .invoke::<i64>(&mut inv)
            .await
            .map_err(|reason| RateError::Unavailable { reason })?;
        self.in_force.store(limit, Release);
        Ok(())
    }

    /// Slots free fleet-wide as of the last acquire through this handle (after it): whether
    /// the next caller is likely to find one without waiting.
    pub fn last_free(&self) -> u32 {
        self.limit().saturating_sub(self.last_held.load(Acquire))
    }

    /// The limit in force as last read from Redis (the configured one until then).
    pub fn limit(&self) -> u32 {
        self.in_force.load(Acquire)
    }

    /// Whether the last command reached Redis.
    pub fn is_healthy(&self) -> bool {
        self.link.healthy()
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.link.settings.failure_policy
    }
}
