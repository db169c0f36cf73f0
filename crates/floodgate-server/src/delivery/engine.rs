//! The delivery engine: everything one delivery needs that does not depend on what carries it.
//! Per destination, an adaptive limit, a rate limit (GCRA, local or shared through Redis) and a
//! breaker from a bounded registry; disable and enable across nodes (a paused group in the
//! store); the verdict turned into the job's outcome on the destination's retry schedule; the
//! attempt to record on the job.
//!
//! **Destinations are isolated from each other.** The worker's slots are shared, so:
//! - each destination's limit is adaptive (AIMD): it starts at 2 (or its `max_concurrency`, if
//!   lower), grows by one per round trip of successful attempts up to `max_concurrency`, and
//!   halves when attempts time out or fail;
//! - a destination at its limit is left out of claims, like one whose breaker is open, so its
//!   jobs wait pending instead of holding a slot;
//! - when attempts running longer than a second hold all but the last quarter of the
//!   worker's slots, every destination with an attempt in flight is left out of claims: the
//!   rest go to destinations with nothing in flight;
//! - a job claimed anyway (in the same batch as others of its destination) waits a moment
//!   (250 ms) for a slot of its destination, and is otherwise put back for half a second
//!   without spending an attempt.
//!
//! So five destinations that hang hold 2 slots each, and a healthy one is delivered within its
//! own latency; fast destinations alone are never held back by the reserve.
//!
//! A destination whose breaker is open is not called; a `Gone` verdict disables the
//! destination until [`Engine::enable`]: its other jobs wait, on every node and across
//! restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use floodgate::adaptive::{AdaptiveLimiter, Aimd};
use floodgate::breaker::{
    BreakerConfig, BreakerError, BreakerRegistry, HealthReport, OpenWait, Outcome, RegistryEvent,
    TripPolicy,
};
use floodgate::limiter::LimiterStats;
use floodgate::rate::redis::{FailurePolicy, RedisRateLimiter, RedisSettings};
use floodgate::rate::{NotUntil, Quota, RateError, RateLimiter};
use floodgate::retry::RetryPolicy;
use floodgate::{Limiter, LimiterError};
use floodgate_queue::worker::{JobError, Outcome as JobOutcome};
use floodgate_queue::{AnyStore, Job, PausedGroup, Store, StoreError};
use serde_json::{Value, json};

use super::Verdict;
use super::transport::{OpenError, Policy, Transport};
use super::waiting::Waiting;
use crate::groups::PausedGroups;

/// Destinations kept at once; a bounded breaker registry keeps hostile hosts cheap too.
const MAX_DESTINATIONS: usize = 10_000;

/// A destination's adaptive limit starts here (or at its `max_concurrency`, if lower): a
/// destination seen for the first time may hang, and holds this many slots until it answers.
const INITIAL_LIMIT: usize = 2;

/// An attempt running longer than this is slow: when slow attempts hold all but the last
/// quarter of the slots, those go to destinations with nothing in flight.
const SLOW: Duration = Duration::from_secs(1);

/// How long a job claimed beyond its destination's limit waits for a slot of it, holding the
/// worker's: a destination that answers in time frees one well within it.
const SLOT_WAIT: Duration = Duration::from_millis(250);

/// How long a job that got no slot within [`SLOT_WAIT`] waits before it is claimed again.
const OVER_LIMIT_WAIT: Duration = Duration::from_millis(500);

/// Jobs waiting for a slot of one destination, at most.
const SLOT_QUEUE: usize = 1_024;

/// The engine's settings, shared by every destination.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Consecutive failures that open a destination's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before a probe.
    pub breaker_wait: Duration,
    /// With a Redis URL, rate limits are shared by every server using it.
    pub redis_url: Option<String>,
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The breaker settings are out of range.
    #[error("{kind} breakers: {reason}")]
    Breakers {
        /// The job kind delivered.
        kind: String,
        /// Why.
        reason: String,
    },
    /// The worker could not be built.
    #[error("{kind} delivery worker: {reason}")]
    Worker {
        /// The job kind delivered.
        kind: String,
        /// Why.
        reason: String,
    },
}

/// One destination's live state.
struct Dest<E> {
    policy: Policy,
    endpoint: E,
    limiter: AdaptiveLimiter,
    rate: Option<Rate>,
}

/// A destination's rate limit: this process's, or shared through Redis.
enum Rate {
    Local(RateLimiter),
    Shared(RedisRateLimiter),
}

impl Rate {
    /// Waits until an attempt is allowed. A shared limit whose Redis cannot answer lets the
    /// attempt through (failing open: a rate limit is not worth stopping delivery for).
    async fn until_ready(&self, key: &str) {
        match self {
            Rate::Local(r) => r.until_ready().await,
            Rate::Shared(r) => loop {
                match r.check(key).await {
                    Err(RateError::Limited(NotUntil::Wait(wait))) => tokio::time::sleep(wait).await,
                    _ => return,
                }
            },
        }
    }
}

/// Delivers the jobs of one transport's kind; see the [module docs](self).
pub struct Engine<T: Transport> {
    transport: T,
    settings: EngineSettings,
    destinations: Mutex<HashMap<String, Arc<Dest<T::Endpoint>>>>,
    breakers: BreakerRegistry,
    waiting: Waiting,
    paused: Arc<PausedGroups>,
    store: AnyStore,
    /// The worker's slots (set when it starts).
    slots: AtomicUsize,
    /// Attempts holding a destination's slot now, across destinations.
    in_flight: InFlight,
}

impl<T: Transport> std::fmt::Debug for Engine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.transport.kind())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Engine<T> {
    /// An engine delivering `transport`'s kind, keeping disabled destinations in `store` and
    /// reading them through `paused` (the server's one cache of paused groups).
    pub fn new(
        transport: T,
        settings: EngineSettings,
        store: AnyStore,
        paused: Arc<PausedGroups>,
    ) -> Result<Engine<T>, EngineError> {
        let breaker = BreakerConfig {
            trip: TripPolicy::ConsecutiveFailures(settings.breaker_failures),
            open_wait: OpenWait::fixed(settings.breaker_wait.max(Duration::from_millis(1))),
            half_open_probes: 1,
            ..BreakerConfig::default()
        };
        let breakers = BreakerRegistry::builder()
            .max_breakers(MAX_DESTINATIONS)
            .default_config(breaker)
            .build()
            .map_err(|e| EngineError::Breakers {
                kind: transport.kind().to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Engine {
            transport,
            settings,
            destinations: Mutex::new(HashMap::new()),
            breakers,
            waiting: Waiting::default(),
            paused,
            store,
            slots: AtomicUsize::new(usize::MAX),
            in_flight: InFlight::default(),
        })
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub(super) fn set_slots(&self, slots: usize) {
        self.slots.store(slots.max(1), Ordering::Relaxed);
    }

    /// Every destination breaker's state changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RegistryEvent> {
        self.breakers.subscribe()
    }

    /// Every destination breaker, with the overall health.
    pub fn health(&self) -> HealthReport {
        self.breakers.health()
    }

    /// Every destination's limiter.
    pub fn limiters(&self) -> Vec<LimiterStats> {
        let all: Vec<_> = lock(&self.destinations).values().cloned().collect();
        let mut stats: Vec<_> = all.iter().map(|d| d.limiter.limiter().stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Whether attempts that have run longer than [`SLOW`] hold all but the last quarter of
    /// the slots: then only destinations with nothing in flight may take one.
    fn crowded(&self) -> bool {
        let slots = self.slots.load(Ordering::Relaxed);
        let reserve = slots / 4;
        reserve > 0 && self.in_flight.slow(SLOW) + reserve >= slots
    }

    /// The destinations whose jobs claims leave where they are: open breakers, disabled ones
    /// (as far as this node knows: at once after its own `Gone`, before the store is re-read),
    /// and those at their limit or, when crowded, with an attempt in flight.
    pub fn waiting_destinations(&self) -> Vec<String> {
        let mut all = self.waiting.open_breakers();
        all.extend(self.waiting.disabled());
        let crowded = self.crowded();
        let destinations = lock(&self.destinations);
        all.extend(
            destinations
                .iter()
                .filter(|(_, d)| full(d, crowded))
                .map(|(name, _)| name.clone()),
        );
        all
    }

    /// Whether `destination` is disabled (as this process last read it).
    pub fn is_disabled(&self, destination: &str) -> bool {
        self.waiting.is_disabled(destination)
    }

    /// The disabled destinations with why and since when, read from the store.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn disabled(&self) -> Result<Vec<PausedGroup>, StoreError> {
        let groups = self.store.paused_groups().await?;
        self.waiting
            .replace_disabled(groups.iter().map(|g| g.name.clone()));
        Ok(groups)
    }

    /// Delivers to `destination` again after it was disabled: `true` when it was.
    ///
    /// # Cancel safety
    ///
    /// Dropped before the store answers, the destination may or may not be enabled; call it
    /// again.
    pub async fn enable(&self, destination: &str) -> Result<bool, StoreError> {
        let was = self.store.resume_group(destination).await?;
        self.paused.forget();
        Ok(self.waiting.set_disabled(destination, false) || was)
    }

    /// Disables `destination` for every node until [`enable`](Self::enable).
    async fn disable(&self, destination: &str, reason: &str) {
        self.waiting.set_disabled(destination, true);
        if let Err(e) = self.store.pause_group(destination, reason).await {
            tracing::error!(destination, error = %e, "disabled here only: the store refused");
        }
        self.paused.forget();
    }

    fn destination(&self, name: &str) -> Result<Arc<Dest<T::Endpoint>>, OpenError> {
        let mut all = lock(&self.destinations);
        if let Some(d) = all.get(name) {
            return Ok(d.clone());
        }
        if all.len() >= MAX_DESTINATIONS {
            all.retain(|_, d| d.limiter.limiter().active() > 0); // rebuilt on demand
        }
        let refuse = |reason: String| OpenError {
            destination: name.to_owned(),
            reason,
        };
        let (policy, endpoint) = self.transport.open(name)?;
        let max = policy.max_concurrency.max(1);
        let aimd = Aimd::default()
            .limits(
                policy
                    .initial_concurrency
                    .unwrap_or(INITIAL_LIMIT)
                    .clamp(1, max),
                1,
                max,
            )
            .backoff(0.5)
            .timeout(policy.timeout);
        let limiter = AdaptiveLimiter::new(
            Limiter::builder()
                .name(format!("{}:{name}", self.transport.kind()))
                .max_queue(SLOT_QUEUE),
            aimd,
        )
        .map_err(|e: LimiterError| refuse(e.to_string()))?;
        let rate = match (policy.rate_per_second, &self.settings.redis_url) {
            (None, _) => None,
            (Some(r), None) => Some(Rate::Local(RateLimiter::new(
                Quota::per_second(r).map_err(|e| refuse(e.to_string()))?,
            ))),
            (Some(r), Some(url)) => {
                let redis = RedisSettings::new(url.clone())
                    .prefix(format!("floodgate:{}s:", self.transport.kind()))
                    .name(format!("{}s", self.transport.kind()))
                    .failure_policy(FailurePolicy::Open);
                let quota = Quota::per_second(r).map_err(|e| refuse(e.to_string()))?;
                Some(Rate::Shared(
                    RedisRateLimiter::new(redis, quota).map_err(|e| refuse(e.to_string()))?,
                ))
            }
        };
        let dest = Arc::new(Dest {
            policy,
            endpoint,
            limiter,
            rate,
        });
        all.insert(name.to_owned(), dest.clone());
        Ok(dest)
    }

    /// Delivers `job` once: the worker's outcome (done with the attempt as the result, retry,
    /// snooze, or dead) and, for a failed attempt, the record to keep on the job.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt (the job is retried by the worker's rules)
    /// and releases the destination's permit.
    pub async fn deliver(&self, job: &Job) -> (Result<JobOutcome, JobError>, Option<Value>) {
        let mut failed = None;
        let outcome = self.deliver_once(job, &mut failed).await;
        (outcome, failed)
    }

    async fn deliver_once(
        &self,
        job: &Job,
        failed: &mut Option<Value>,
    ) -> Result<JobOutcome, JobError> {
        let message = self
            .transport
            .parse(&job.payload)
            .map_err(JobError::permanent)?;
        let name = self.transport.destination(&message);
        // What other nodes disabled or enabled, read at most once a second.
        if let (names, true) = self.paused.names().await {
            self.waiting.replace_disabled(names.iter().cloned());
        }
        if self.is_disabled(&name) {
            // Claimed although its group is paused (a job without the destination's group, or
            // an enable on another node that this one reads within a second): it waits like
            // the others, without spending an attempt, and looks again shortly.
            return Err(snooze(Duration::from_secs(5)));
        }
        let dest = self.destination(&name).map_err(JobError::permanent)?;
        if let Some(reason) = self.transport.refuse(&dest.endpoint, &message) {
            return Err(JobError::permanent(reason));
        }
        // A slot of its own, or back to pending: claimed in the same batch as others of its
        // destination beyond the limit, and none freed within a moment.
        let slot = match dest.limiter.try_acquire() {
            Ok(slot) => slot,
            Err(_) => match tokio::time::timeout(SLOT_WAIT, dest.limiter.acquire()).await {
                Ok(Ok(slot)) => slot,
                _ => return Err(snooze(OVER_LIMIT_WAIT)),
            },
        };
        let _counted = self.in_flight.begin();
        let breaker = self.breakers.get(&name).map_err(JobError::retry)?;
        let permit = match breaker.try_acquire() {
            Ok(p) => p,
            Err(e @ BreakerError::Open { .. }) => {
                slot.ignore();
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_millis(100));
                self.waiting.breaker_open(&name, wait);
                return Err(snooze(wait));
            }
            Err(e) => return Err(JobError::retry(e)),
        };
        if let Some(rate) = &dest.rate {
            rate.until_ready(&name).await;
        }
        let sent = self.transport.send(&dest.endpoint, &message, job).await;
        let verdict = sent.verdict;
        if verdict.is_breaker_failure() {
            slot.dropped();
            permit.record(
                Outcome::Failure,
                sent.error.as_ref().map(|e| e as &dyn std::fmt::Display),
            );
            if let Some(wait) = breaker.stats().retry_after {
                self.waiting.breaker_open(&name, wait);
            }
        } else if verdict == Verdict::Delivered {
            slot.success();
            permit.record(Outcome::Success, None);
            self.waiting.breaker_closed(&name);
        } else {
            slot.ignore();
            permit.record(Outcome::Ignored, None);
        }
        let mut record = Value::Object(sent.record);
        let describe = sent.error.unwrap_or_else(|| "failed".to_owned());
        // An unavailable destination is not an attempt: nothing is recorded.
        if !matches!(verdict, Verdict::Delivered | Verdict::Unavailable) {
            record["attempt"] = json!(job.attempt);
            *failed = Some(record.clone());
        }
        match verdict {
            Verdict::Delivered => Ok(JobOutcome::with_result(record)),
            // The destination's schedule decides; a receiver's Retry-After is a floor.
            Verdict::RetryAfter(_) | Verdict::Retry => {
                let floor = match verdict {
                    Verdict::RetryAfter(wait) => wait,
                    _ => Duration::ZERO,
                };
                let schedule = &dest.policy.schedule;
                match schedule.next_delay(job.attempt, Duration::ZERO, None) {
                    Some(delay) => Err(JobError::retry_after(describe, delay.max(floor))),
                    None => Err(JobError::permanent(format!(
                        "{describe}; the retry schedule ({} attempts) is used up",
                        schedule.attempts()
                    ))),
                }
            }
            Verdict::Permanent => Err(JobError::permanent(describe)),
            // The job waits for the destination, its attempt unspent.
            Verdict::Unavailable => {
                tracing::debug!(kind = self.transport.kind(), destination = %name, error = %describe, "unavailable: the job waits");
                let wait = breaker.stats().retry_after;
                let wait = wait.unwrap_or(dest.policy.timeout.min(Duration::from_secs(1)));
                Err(snooze(wait.max(Duration::from_millis(100))))
            }
            Verdict::Gone => {
                self.disable(&name, &describe).await;
                tracing::warn!(kind = self.transport.kind(), destination = %name, "gone: destination disabled");
                Err(JobError::permanent(format!(
                    "{describe}; destination {name} is now disabled"
                )))
            }
        }
    }
}

/// Whether `dest` takes no more attempts now: at its limit, or crowded with one in flight.
fn full<E>(dest: &Dest<E>, crowded: bool) -> bool {
    let limiter = dest.limiter.limiter();
    limiter.available() == 0 || (crowded && limiter.active() > 0)
}

fn snooze(wait: Duration) -> JobError {
    JobError::Snooze {
        until: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
    }
}

/// The attempts holding a destination's slot, with when each began.
#[derive(Default)]
struct InFlight {
    next: AtomicUsize,
    began: Mutex<HashMap<usize, Instant>>,
}

impl InFlight {
    /// Counts one attempt until the guard drops.
    fn begin(&self) -> Attempt<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.began).insert(id, Instant::now());
        Attempt { owner: self, id }
    }

    /// How many have run longer than `after`.
    fn slow(&self, after: Duration) -> usize {
        lock(&self.began)
            .values()
            .filter(|began| began.elapsed() > after)
            .count()
    }
}

/// One attempt in flight.
struct Attempt<'a> {
    owner: &'a InFlight,
    id: usize,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        lock(&self.owner.began).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
