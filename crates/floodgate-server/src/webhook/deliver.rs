//! Delivering one `webhook` job: the destination's breaker, limiter and rate limit (GCRA), the
//! address guard, the Standard Webhooks signature (`webhook-id` is the job id, stable across
//! attempts, so receivers can drop repeats), one request, and the verdict turned into the
//! worker's outcome.
//!
//! A destination whose breaker is open is not called: the worker leaves its jobs unclaimed
//! ([`Deliverer::open_breakers`], see `waiting.rs`) until the breaker lets a probe through,
//! while other destinations' jobs keep flowing; a job claimed anyway (claimed just before the
//! breaker opened, or without the destination's group) is put back (snoozed, no attempt
//! spent). A `410 Gone` disables the destination (the receiver said the endpoint is gone for
//! good): the job that got it goes dead, and the destination becomes a paused group in the
//! store, so its other jobs wait, on every node and across restarts, until
//! [`Deliverer::enable`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use floodgate::Limiter;
use floodgate::breaker::{
    BreakerConfig, BreakerError, BreakerRegistry, OpenWait, Outcome, TripPolicy,
};
use floodgate::rate::redis::{FailurePolicy, RedisRateLimiter, RedisSettings};
use floodgate::rate::{NotUntil, Quota, RateError, RateLimiter};
use floodgate::retry::RetryPolicy;
use floodgate_queue::worker::{JobError, Outcome as JobOutcome};
use floodgate_queue::{AnyStore, Job, Store, StoreError};
use serde_json::{Value, json};

use super::classify::{Verdict, classify_status};
use super::config::{Resolved, WebhookConfig};
use super::request::WebhookRequest;
use super::signature;
use super::ssrf::{self, Refused};
use super::waiting::Waiting;

/// What one attempt did, kept on the job (as its result, or in its last error).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// How long the request took.
    pub duration: Duration,
    /// The start of the answer's body (`max_response_bytes`, 4 KiB by default).
    pub body: String,
    /// Why the body kept is not the whole answer (longer than kept, cut off at the timeout,
    /// broken off), if it is not.
    pub body_error: Option<String>,
}

/// One destination's live state.
struct Dest {
    settings: Resolved,
    client: reqwest::Client,
    limiter: Limiter,
    rate: Option<Rate>,
}

/// A destination's rate limit: this process's, or shared through Redis.
enum Rate {
    Local(RateLimiter),
    Shared(RedisRateLimiter),
}

impl Rate {
    /// Waits until a delivery is allowed. A shared limit whose Redis cannot answer lets the
    /// delivery through (failing open: a rate limit is not worth stopping delivery for).
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

/// Delivers webhooks; one per server.
pub struct Deliverer {
    config: WebhookConfig,
    destinations: Mutex<HashMap<String, Arc<Dest>>>,
    breakers: BreakerRegistry,
    waiting: Waiting,
    paused: crate::groups::PausedGroups,
    store: AnyStore,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

/// Destinations kept at once; a bounded breaker registry keeps hostile hosts cheap too.
const MAX_DESTINATIONS: usize = 10_000;

impl Deliverer {
    /// A deliverer with `config` (already validated) that keeps disabled destinations in
    /// `store`.
    pub fn new(config: WebhookConfig, store: AnyStore) -> Result<Deliverer, String> {
        config.validate()?;
        let breaker = BreakerConfig {
            trip: TripPolicy::ConsecutiveFailures(config.breaker_failures),
            open_wait: OpenWait::fixed(Duration::from_secs_f64(config.breaker_wait.max(0.001))),
            half_open_probes: 1,
            ..BreakerConfig::default()
        };
        let breakers = BreakerRegistry::builder()
            .max_breakers(MAX_DESTINATIONS)
            .default_config(breaker)
            .build()
            .map_err(|e| format!("webhooks breakers: {e}"))?;
        Ok(Deliverer {
            config,
            destinations: Mutex::new(HashMap::new()),
            breakers,
            waiting: Waiting::default(),
            paused: crate::groups::PausedGroups::new(store.clone(), Duration::from_secs(1)),
            store,
        })
    }

    /// Every destination breaker's state changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<floodgate::breaker::RegistryEvent> {
        self.breakers.subscribe()
    }

    /// Every destination breaker, with the overall health.
    pub fn health(&self) -> floodgate::breaker::HealthReport {
        self.breakers.health()
    }

    /// Every destination's delivery limiter.
    pub fn limiters(&self) -> Vec<floodgate::limiter::LimiterStats> {
        let all: Vec<Arc<Dest>> = lock(&self.destinations).values().cloned().collect();
        let mut stats: Vec<_> = all.iter().map(|d| d.limiter.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// The destinations whose breaker is open now: the worker leaves their jobs unclaimed.
    pub fn open_breakers(&self) -> Vec<String> {
        self.waiting.open_breakers()
    }

    /// The destinations whose jobs this node's worker leaves unclaimed: open breakers, and
    /// those disabled as far as this node knows (at once after its own 410, before the worker
    /// re-reads the store's paused groups).
    pub fn waiting_destinations(&self) -> Vec<String> {
        let mut all = self.waiting.open_breakers();
        all.extend(self.waiting.disabled());
        all
    }

    /// Whether `destination` was disabled by a `410 Gone` (as this process last read it).
    pub fn is_disabled(&self, destination: &str) -> bool {
        self.waiting.is_disabled(destination)
    }

    /// The disabled destinations with why and since when, read from the store (and kept
    /// for [`is_disabled`](Self::is_disabled)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn disabled(&self) -> Result<Vec<floodgate_queue::PausedGroup>, StoreError> {
        let groups = self.store.paused_groups().await?;
        self.waiting
            .replace_disabled(groups.iter().map(|g| g.name.clone()));
        Ok(groups)
    }

    /// Delivers to `destination` again after a `410 Gone` disabled it (its waiting jobs are
    /// claimed again; its dead ones can be retried): `true` when it was disabled.
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

    fn destination(&self, name: &str) -> Result<Arc<Dest>, String> {
        let mut all = lock(&self.destinations);
        if let Some(d) = all.get(name) {
            return Ok(d.clone());
        }
        if all.len() >= MAX_DESTINATIONS {
            all.clear(); // rebuilt on demand; limits are per process anyway
        }
        let settings = self.config.resolve(name)?;
        let client = ssrf::client(
            settings.policy.clone(),
            settings.connect_timeout,
            settings.timeout,
        )
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let limiter = Limiter::builder()
            .name(format!("webhook:{name}"))
            .max_concurrency(settings.max_concurrency)
            .build()
            .map_err(|e| e.to_string())?;
        let rate = match (settings.rate_per_second, &self.config.redis_url) {
            (None, _) => None,
            (Some(r), None) => Some(Rate::Local(RateLimiter::new(
                Quota::per_second(r).map_err(|e| e.to_string())?,
            ))),
            (Some(r), Some(url)) => {
                let redis = RedisSettings::new(url.clone())
                    .prefix("floodgate:webhooks:")
                    .name("webhooks")
                    .failure_policy(FailurePolicy::Open);
                let quota = Quota::per_second(r).map_err(|e| e.to_string())?;
                Some(Rate::Shared(
                    RedisRateLimiter::new(redis, quota).map_err(|e| e.to_string())?,
                ))
            }
        };
        let dest = Arc::new(Dest {
            settings,
            client,
            limiter,
            rate,
        });
        all.insert(name.to_owned(), dest.clone());
        Ok(dest)
    }

    /// Delivers `job` once: the worker's outcome (done with the attempt as the result, retry,
    /// snooze, or dead) and, for a failed request, the attempt to record on the job.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the request (the job is retried by the worker's rules).
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
        let request = WebhookRequest::parse(&job.payload).map_err(JobError::permanent)?;
        let name = request.destination();
        // What other nodes disabled or enabled, read at most once a second.
        if let (names, true) = self.paused.names().await {
            self.waiting.replace_disabled(names.iter().cloned());
        }
        if self.is_disabled(&name) {
            // Claimed although its group is paused (a job without the destination's group, or
            // an enable on another node that this one reads within a second): it waits like
            // the others, without spending an attempt, and looks again shortly.
            return Err(JobError::Snooze {
                until: Utc::now() + chrono::Duration::seconds(5),
            });
        }
        let dest = self.destination(&name).map_err(JobError::permanent)?;
        dest.settings
            .policy
            .check_url(&request.url)
            .map_err(|r| JobError::permanent(r.to_string()))?;
        let breaker = self.breakers.get(&name).map_err(JobError::retry)?;
        let permit = match breaker.try_acquire() {
            Ok(p) => p,
            Err(e @ BreakerError::Open { .. }) => {
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_millis(100));
                self.waiting.breaker_open(&name, wait);
                return Err(JobError::Snooze {
                    until: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                });
            }
            Err(e) => return Err(JobError::retry(e)),
        };
        let _slot = dest
            .limiter
            .acquire()
            .await
            .map_err(|e| JobError::retry(format!("destination {name}: {e}")))?;
        if let Some(rate) = &dest.rate {
            rate.until_ready(&name).await;
        }
        let (attempt, verdict, error) = self.send(&dest, &request, job).await;
        permit.record(
            if verdict.is_breaker_failure() {
                Outcome::Failure
            } else if verdict == Verdict::Delivered {
                Outcome::Success
            } else {
                Outcome::Ignored
            },
            error.as_ref().map(|e| e as &dyn std::fmt::Display),
        );
        if verdict.is_breaker_failure() {
            if let Some(wait) = breaker.stats().retry_after {
                self.waiting.breaker_open(&name, wait);
            }
        } else if verdict == Verdict::Delivered {
            self.waiting.breaker_closed(&name);
        }
        let mut record = attempt_json(&attempt);
        if verdict != Verdict::Delivered {
            record["attempt"] = json!(job.attempt);
            record["error"] = json!(error.clone().or_else(|| attempt.body_error.clone()));
            *failed = Some(record.clone());
        }
        let describe = || match (&error, attempt.status) {
            (Some(e), _) => format!("{e} (after {:?})", attempt.duration),
            (None, Some(s)) => format!("HTTP {s}: {} (after {:?})", attempt.body, attempt.duration),
            (None, None) => "no answer".to_owned(),
        };
        match verdict {
            Verdict::Delivered => Ok(JobOutcome::with_result(record)),
            // The destination's schedule decides; a receiver's Retry-After is a floor.
            Verdict::RetryAfter(_) | Verdict::Retry => {
                let floor = match verdict {
                    Verdict::RetryAfter(wait) => wait,
                    _ => Duration::ZERO,
                };
                let schedule = &dest.settings.schedule;
                match schedule.next_delay(job.attempt, Duration::ZERO, None) {
                    Some(delay) => Err(JobError::retry_after(describe(), delay.max(floor))),
                    None => Err(JobError::permanent(format!(
                        "{}; the retry schedule ({} attempts) is used up",
                        describe(),
                        schedule.attempts()
                    ))),
                }
            }
            Verdict::Permanent => Err(JobError::permanent(describe())),
            Verdict::Gone => {
                self.disable(&name, &format!("410 Gone from {}", request.url))
                    .await;
                tracing::warn!(destination = %name, "410 Gone: destination disabled");
                Err(JobError::permanent(format!(
                    "{}; destination {name} is now disabled",
                    describe()
                )))
            }
        }
    }

    /// One request: the attempt, the verdict, and a transport error, if any.
    async fn send(
        &self,
        dest: &Dest,
        request: &WebhookRequest,
        job: &Job,
    ) -> (Attempt, Verdict, Option<String>) {
        let body = match &request.body {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut builder = dest
            .client
            .request(method, request.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        let id = format!("job_{}", job.id);
        if !dest.settings.secrets.is_empty()
            && let Ok(headers) =
                signature::headers(&dest.settings.secrets, &id, Utc::now().timestamp(), &body)
        {
            for (k, v) in headers {
                builder = builder.header(k, v);
            }
        } else {
            builder = builder.header(signature::WEBHOOK_ID, id.as_str());
        }
        let started = Instant::now();
        match builder.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let deadline = tokio::time::Instant::from_std(started) + dest.settings.timeout;
                let (body, body_error) =
                    read_capped(response, self.config.max_response_bytes, deadline).await;
                let attempt = Attempt {
                    status: Some(status),
                    duration: started.elapsed(),
                    body,
                    body_error,
                };
                let max = Duration::from_secs_f64(self.config.max_retry_after);
                (
                    attempt,
                    classify_status(status, retry_after.as_deref(), max),
                    None,
                )
            }
            Err(e) => {
                let attempt = Attempt {
                    status: None,
                    duration: started.elapsed(),
                    body: String::new(),
                    body_error: None,
                };
                match Refused::find_in(&e) {
                    Some(refused) => (attempt, Verdict::Permanent, Some(refused.to_string())),
                    None => {
                        let what = if e.is_timeout() {
                            "timed out"
                        } else {
                            "failed"
                        };
                        (
                            attempt,
                            Verdict::Retry,
                            Some(format!("request {what}: {e}")),
                        )
                    }
                }
            }
        }
    }
}

fn attempt_json(a: &Attempt) -> Value {
    let mut record = json!({
        "status": a.status,
        "duration_ms": a.duration.as_millis() as u64,
        "body": a.body,
    });
    if let Some(e) = &a.body_error {
        record["body_error"] = json!(e);
    }
    record
}

/// Reads at most `cap` bytes of an answer's body, until `deadline`, and drops the rest unread
/// (the connection closes with the response): a receiver's answer never grows memory beyond
/// the cap and one chunk, and a body that drips is cut off at the request's timeout. The kept
/// bytes (as text, cut at a character boundary) and why they are not the whole body, if not.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    deadline: tokio::time::Instant,
) -> (String, Option<String>) {
    let mut kept: Vec<u8> = Vec::with_capacity(cap.min(4096));
    let error = loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = cap - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    break Some(format!(
                        "the answer's body is longer than {cap} bytes: the first {} are kept, \
                         the rest was not read",
                        kept.len()
                    ));
                }
            }
            Ok(Ok(None)) => break None,
            // (The client's own deadline for the whole request, the same one as below.)
            Ok(Err(e)) if e.is_timeout() => {
                break Some(format!(
                    "the answer's body did not end within the request's timeout: {} bytes \
                     kept",
                    kept.len()
                ));
            }
            Ok(Err(e)) => {
                break Some(format!(
                    "the answer's body broke off after {} bytes: {e}",
                    kept.len()
                ));
            }
            Err(_) => {
                break Some(format!(
                    "the answer's body did not end within the request's timeout: {} bytes \
                     kept",
                    kept.len()
                ));
            }
        }
    };
    (text_of(kept), error)
}

/// `bytes` as text: invalid UTF-8 replaced, a character cut at the end dropped.
fn text_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            match std::str::from_utf8(&bytes[valid..]) {
                // Only an incomplete character at the end: the cut.
                Err(tail) if tail.error_len().is_none() => {
                    String::from_utf8_lossy(&bytes[..valid]).into_owned()
                }
                _ => String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
