//! The circuit breaker's engine and public type.
//!
//! # Implementation
//!
//! The state lives in one atomic word together with the half-open probe counts:
//!
//! ```text
//!  u64:  [ epoch (37 bits) | probes ok (12) | probes admitted (12) | state (3) ]
//! ```
//!
//! Admission reads it: closed and disabled admit at once; open compares the clock with
//! `open_until`; half-open admits with a compare-and-swap that adds one admitted probe while
//! the count is below `half_open_probes`, so exactly that many probes get through however many
//! callers race. Each admitted call remembers the epoch it was admitted in, and its outcome
//! only counts if the epoch is still current: a slow call admitted while closed cannot re-open
//! a breaker that has since recovered. Because the probe counts share the word with the epoch,
//! "the epoch is still mine" and "give back my probe slot" (or "count my success") are one
//! atomic step: a stale probe can never land on the next half-open period's counters, however
//! the transitions interleave.
//!
//! Outcomes go to the [window](super::window); a closed-state success is one `fetch_add` and
//! takes no lock. State changes are rare and happen under a mutex that re-checks the state word
//! (a compare against the word the caller saw), then publish the new word, emit the event,
//! update metrics and log.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use metrics::{Counter, Gauge};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::config::{BreakerConfig, TripPolicy, WindowKind};
use super::error::{BreakerConfigError, BreakerError};
use super::events::{BreakerEvent, State};
use super::outcome::Outcome;
use super::window::{CountWindow, Rates, TimeWindow, Window};
use crate::sync::{Arc, AtomicU64, Mutex, lock};

const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const COUNT_BITS: u32 = 12;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const ADMITTED_SHIFT: u32 = STATE_BITS;
const OK_SHIFT: u32 = STATE_BITS + COUNT_BITS;
const EPOCH_SHIFT: u32 = STATE_BITS + 2 * COUNT_BITS;
/// One admitted probe in the state word.
const ADMITTED: u64 = 1 << ADMITTED_SHIFT;
/// One successful probe in the state word.
const OK: u64 = 1 << OK_SHIFT;

/// The largest `half_open_probes` the state word can count.
pub(crate) const MAX_PROBES: u32 = 1 << (COUNT_BITS - 2);

/// A new period in `state`: its counts start at zero.
fn word(epoch: u64, state: State) -> u64 {
    epoch << EPOCH_SHIFT | state.code()
}

fn state_of(word: u64) -> State {
    State::from_code(word & STATE_MASK)
}

fn epoch_of(word: u64) -> u64 {
    word >> EPOCH_SHIFT
}

fn admitted_of(word: u64) -> u32 {
    ((word >> ADMITTED_SHIFT) & COUNT_MASK) as u32
}

fn ok_of(word: u64) -> u32 {
    ((word >> OK_SHIFT) & COUNT_MASK) as u32
}

/// The word without its probe counts: equal for the same period.
fn period(word: u64) -> u64 {
    word & !((COUNT_MASK << ADMITTED_SHIFT) | (COUNT_MASK << OK_SHIFT))
}

/// Called on every state change (the registry uses it for protective mode).
pub(crate) type TransitionHook = std::sync::Arc<dyn Fn(&BreakerEvent) + Send + Sync>;

#[derive(Debug)]
struct Transitions {
    reopens: u32,
    since: Instant,
    rng: SmallRng,
    last_failure: Option<String>,
}

#[derive(Debug)]
struct Metrics {
    state: Gauge,
    success: Counter,
    failure: Counter,
    ignored: Counter,
    rejected: Counter,
    transitions: Counter,
}

impl Metrics {
    fn new(name: &str) -> Self {
        let calls = |outcome: &'static str| metrics::counter!("floodgate_breaker_calls_total", "breaker" => name.to_owned(), "outcome" => outcome);
        Metrics {
            state: metrics::gauge!("floodgate_breaker_state", "breaker" => name.to_owned()),
            success: calls("success"),
            failure: calls("failure"),
            ignored: calls("ignored"),
            rejected: calls("rejected"),
            transitions: metrics::counter!("floodgate_breaker_transitions_total", "breaker" => name.to_owned()),
        }
    }
}

struct Engine {
    name: std::sync::Arc<str>,
    config: BreakerConfig,
    base: Instant,
    state: AtomicU64,
    open_until: AtomicU64,
    /// Consecutive failures while closed, tagged with the closed period's epoch (high 32 bits)
    /// so that a stale failure cannot count towards a later period.
    consecutive: AtomicU64,
    window: Window,
    failures: StdAtomicU64,
    ignored: StdAtomicU64,
    rejected: StdAtomicU64,
    slow: StdAtomicU64,
    transitions: Mutex<Transitions>,
    events: broadcast::Sender<BreakerEvent>,
    metrics: Metrics,
    hook: Option<TransitionHook>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &state_of(self.state.load(Relaxed)))
            .finish_non_exhaustive()
    }
}

/// What an admitted call carries until its outcome is recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    probe: bool,
    start: Option<Instant>,
}

/// A circuit breaker: stops calling a dependency that keeps failing, and tests it again after
/// a wait. Cloning gives another handle to the same breaker.
///
/// See the [module documentation](super) for an overview and an example.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    engine: Arc<Engine>,
}

/// A snapshot of one breaker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The breaker's name.
    pub name: String,
    /// Its state now.
    pub state: State,
    /// How long it has been in that state.
    pub in_state_for: Duration,
    /// For an open breaker: how long until it lets probes through.
    pub retry_after: Option<Duration>,
    /// Calls in the current window.
    pub window_calls: u64,
    /// Failure rate over the current window (0..=1).
    pub failure_rate: f64,
    /// Slow-call rate over the current window (0..=1).
    pub slow_rate: f64,
    /// Calls counted since the breaker was built (not ignored, not rejected).
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow calls.
    pub slow: u64,
    /// Calls whose outcome was `Ignored` (including cancelled calls).
    pub ignored: u64,
    /// Calls rejected while open.
    pub rejected: u64,
    /// Consecutive re-opens (the open wait grows with it).
    pub reopens: u32,
    /// The error of the call that last opened the breaker.
    pub last_failure: Option<String>,
}

impl CircuitBreaker {
    /// Starts building a breaker.
    pub fn builder() -> super::BreakerBuilder {
        super::BreakerBuilder::default()
    }

    /// A breaker with default settings.
    pub fn new(name: impl Into<String>) -> CircuitBreaker {
        Self::from_config(name.into(), BreakerConfig::default()).expect("the defaults are valid")
    }

    pub(crate) fn from_config(
        name: String,
        config: BreakerConfig,
    ) -> Result<Self, BreakerConfigError> {
        Self::with_hook(name, config, None)
    }

    pub(crate) fn with_hook(
        name: String,
        config: BreakerConfig,
        hook: Option<TransitionHook>,
    ) -> Result<Self, BreakerConfigError> {
        config.validate()?;
        let window = match config.window {
            WindowKind::Count(n) => Window::Count(CountWindow::new(n)),
            WindowKind::Time { window, buckets } => Window::Time(TimeWindow::new(window, buckets)),
        };
        let now = Instant::now();
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let metrics = Metrics::new(&name);
        metrics.state.set(0.0);
        Ok(CircuitBreaker {
            engine: Arc::new(Engine {
                name: name.into(),
                config,
                base: now,
                state: AtomicU64::new(word(0, State::Closed)),
                open_until: AtomicU64::new(0),
                consecutive: AtomicU64::new(0),
                window,
                failures: StdAtomicU64::new(0),
                ignored: StdAtomicU64::new(0),
                rejected: StdAtomicU64::new(0),
                slow: StdAtomicU64::new(0),
                transitions: Mutex::new(Transitions {
                    reopens: 0,
                    since: now,
                    rng: SmallRng::seed_from_u64(seed),
                    last_failure: None,
                }),
                events: broadcast::channel(64).0,
                metrics,
                hook,
            }),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.engine.name
    }

    /// The settings it runs with.
    pub fn config(&self) -> &BreakerConfig {
        &self.engine.config
    }

    /// The state now. An open breaker whose wait has passed reports `Open` until the next
    /// call moves it to half-open.
    pub fn state(&self) -> State {
        state_of(self.engine.state.load(Acquire))
    }

    /// Receives every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.engine.events.subscribe()
    }

    /// Runs `op` through the breaker: `Ok` counts as a success, `Err` as a failure.
    ///
    /// Fails with [`BreakerError::Open`] without running `op` while open, and with
    /// [`BreakerError::Timeout`] when the configured call timeout passes.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels `op`; a cancelled call counts as `Ignored` and gives back
    /// its half-open probe slot.
    ///
    /// # Examples
    ///
    /// ```
    /// use floodgate::breaker::CircuitBreaker;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder().name("db").consecutive_failures(2).build().unwrap();
    /// for _ in 0..2 {
    ///     let _ = breaker.call(|| async { Err::<(), _>("connection refused") }).await;
    /// }
    /// let err = breaker.call(|| async { Ok::<_, &str>(()) }).await.unwrap_err();
    /// assert!(err.is_open());
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, op: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        self.call_classified(op, Outcome::of).await
    }

    /// Runs `op` and classifies its result with `classify` (e.g. by HTTP status).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    ///
    /// ```
    /// use floodgate::breaker::{CircuitBreaker, Outcome};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::new("api");
    /// let status = breaker
    ///     .call_classified(
    ///         || async { Ok::<u16, std::io::Error>(429) },
    ///         |r| match r {
    ///             Ok(status) => Outcome::from_http_status(*status),
    ///             Err(e) => Outcome::from_io_error(e),
    ///         },
    ///     )
    ///     .await
    ///     .unwrap();
    /// assert_eq!(status, 429);
    /// assert_eq!(breaker.stats().ignored, 1);
    /// # }
    /// ```
    pub async fn call_classified<F, Fut, T, E, C>(
        &self,
        op: F,
        classify: C,
    ) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Outcome,
        E: Display,
    {
        let ticket = self
            .engine
            .admit()
            .map_err(|retry_after| self.open_error(retry_after))?;
        let mut pending = Pending {
            engine: &self.engine,
            ticket: Some(ticket),
        };
        let result = match self.engine.config.call_timeout {
            None => op().await,
            Some(limit) => match tokio::time::timeout(limit, op()).await {
                Ok(result) => result,
                Err(_) => {
                    let ticket = pending.ticket.take().expect("recorded once");
                    self.engine.record(ticket, Outcome::Failure, || {
                        format!("timed out after {limit:?}")
                    });
                    return Err(BreakerError::Timeout(limit));
                }
            },
        };
        let outcome = classify(&result);
        let ticket = pending.ticket.take().expect("recorded once");
        match &result {
            Err(e) => self.engine.record(ticket, outcome, || e.to_string()),
            Ok(_) => self
                .engine
                .record(ticket, outcome, || "slow calls".to_owned()),
        }
        result.map_err(BreakerError::Inner)
    }

    /// Runs `op` through the breaker; when the breaker is open or the call fails, returns what
    /// `fallback` makes of the error instead (e.g. a cached answer).
    ///
    /// ```
    /// use floodgate::breaker::CircuitBreaker;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::new("prices");
    /// breaker.force_open();
    /// let price = breaker
    ///     .call_with_fallback(|| async { Ok::<u32, String>(42) }, |_err| async { Ok(40) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(price, 40); // the cached price
    /// # }
    /// ```
    pub async fn call_with_fallback<F, Fut, T, E, FB, FbFut>(
        &self,
        op: F,
        fallback: FB,
    ) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
        FB: FnOnce(BreakerError<E>) -> FbFut,
        FbFut: Future<Output = Result<T, BreakerError<E>>>,
    {
        match self.call(op).await {
            Ok(v) => Ok(v),
            Err(e) => fallback(e).await,
        }
    }

    /// Asks to make one call without running it here: `Ok` with a permit to report the
    /// outcome on, or the `Open` error. For middleware and runtimes that drive calls
    /// themselves. A permit dropped without an outcome counts as `Ignored`.
    pub fn try_acquire(&self) -> Result<CallPermit, BreakerError<std::convert::Infallible>> {
        let ticket = self
            .engine
            .admit()
            .map_err(|retry_after| self.open_error(retry_after))?;
        Ok(CallPermit {
            breaker: self.clone(),
            ticket: Some(ticket),
        })
    }

    fn open_error<E>(&self, retry_after: Option<Duration>) -> BreakerError<E> {
        BreakerError::Open {
            name: self.engine.name.clone(),
            retry_after,
        }
    }

    /// Moves an open or closed breaker straight to half-open (loom models only).
    #[cfg(all(test, floodgate_loom))]
    pub(crate) fn enter_half_open(&self) {
        let w = self.engine.state.load(Acquire);
        assert!(
            self.engine
                .transition(w, State::HalfOpen, String::new, String::new)
        );
    }

    /// Closes the breaker and forgets the window and the re-open count.
    pub fn reset(&self) {
        self.engine.force(State::Closed, "reset");
    }

    /// Opens the breaker until [`reset`](Self::reset) (e.g. during maintenance of the
    /// dependency).
    pub fn force_open(&self) {
        self.engine.force(State::ForcedOpen, "forced open");
    }

    /// Lets every call through and never trips, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.engine.force(State::Disabled, "disabled");
    }

    /// A snapshot of the breaker.
    pub fn stats(&self) -> BreakerStats {
        let e = &self.engine;
        let w = e.state.load(Acquire);
        let state = state_of(w);
        let t = lock(&e.transitions);
        let rates: Rates = e.window.rates();
        let calls = match &e.window {
            Window::Count(c) => c.total(),
            Window::Time(_) => rates.calls,
        };
        BreakerStats {
            name: e.name.to_string(),
            state,
            in_state_for: t.since.elapsed(),
            retry_after: (state == State::Open).then(|| e.open_remaining(Instant::now())),
            window_calls: rates.calls,
            failure_rate: rates.failure_rate(),
            slow_rate: rates.slow_rate(),
            calls,
            failures: e.failures.load(Relaxed),
            slow: e.slow.load(Relaxed),
            ignored: e.ignored.load(Relaxed),
            rejected: e.rejected.load(Relaxed),
            reopens: t.reopens,
            last_failure: t.last_failure.clone(),
        }
    }
}

/// Records `Ignored` if the call's future is dropped before its outcome is known.
struct Pending<'a> {
    engine: &'a Engine,
    ticket: Option<Ticket>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.engine.record(ticket, Outcome::Ignored, String::new);
        }
    }
}

/// Permission for one call, from [`CircuitBreaker::try_acquire`]; report how it went with
/// [`record`](Self::record). Dropping it unreported counts as `Ignored`.
#[derive(Debug)]
#[must_use = "report the call's outcome with record(); dropping the permit counts as Ignored"]
pub struct CallPermit {
    breaker: CircuitBreaker,
    ticket: Option<Ticket>,
}

impl CallPermit {
    /// Reports the call's outcome; `error` describes a failure for health reports.
    pub fn record(mut self, outcome: Outcome, error: Option<&dyn Display>) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.engine.record(ticket, outcome, || {
                error.map_or_else(|| "failure".to_owned(), |e| e.to_string())
            });
        }
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.probe)
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker
                .engine
                .record(ticket, Outcome::Ignored, String::new);
        }
    }
}

impl Engine {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn open_remaining(&self, now: Instant) -> Duration {
        Duration::from_nanos(
            self.open_until
                .load(Acquire)
                .saturating_sub(self.nanos(now)),
        )
    }

    /// Admits a call, or says how long the breaker stays open (`None`: forced open).
    fn admit(&self) -> Result<Ticket, Option<Duration>> {
        loop {
            let w = self.state.load(Acquire);
            let epoch = epoch_of(w);
            match state_of(w) {
                State::Closed | State::Disabled => {
                    return Ok(Ticket {
                        epoch,
                        probe: false,
                        start: self.config.slow_call_duration.map(|_| Instant::now()),
                    });
                }
                State::Open => {
                    let now = Instant::now();
                    let remaining = self.open_remaining(now);
                    if !remaining.is_zero() {
                        return Err(self.reject(Some(remaining)));
                    }
                    self.transition(
                        w,
                        State::HalfOpen,
                        || "open wait passed".to_owned(),
                        String::new,
                    );
                }
                State::HalfOpen => {
                    if admitted_of(w) >= self.config.half_open_probes {
                        return Err(self.reject(Some(Duration::ZERO)));
                    }
                    // Counted only if the word (and so the period) is unchanged.
                    if self
                        .state
                        .compare_exchange_weak(w, w + ADMITTED, AcqRel, Acquire)
                        .is_ok()
                    {
                        return Ok(Ticket {
                            epoch,
                            probe: true,
                            start: self.config.slow_call_duration.map(|_| Instant::now()),
                        });
                    }
                }
                State::ForcedOpen => return Err(self.reject(None)),
            }
        }
    }

    fn reject(&self, retry_after: Option<Duration>) -> Option<Duration> {
        self.rejected.fetch_add(1, Relaxed);
        self.metrics.rejected.increment(1);
        retry_after
    }

    fn record(&self, ticket: Ticket, outcome: Outcome, describe: impl FnOnce() -> String) {
        if outcome == Outcome::Ignored {
            self.ignored.fetch_add(1, Relaxed);
            self.metrics.ignored.increment(1);
            if ticket.probe {
                // Gives the slot back, so the count is the probes in flight and an ignored
                // probe's slot can be taken again; only within the ticket's own period.
                self.update_period(ticket.epoch, |w| w - ADMITTED);
            }
            return;
        }
        let w = self.state.load(Acquire);
        let current = epoch_of(w) == ticket.epoch;
        let failed = outcome.is_failure();
        let slow = match (ticket.start, self.config.slow_call_duration) {
            (Some(start), Some(limit)) => start.elapsed() >= limit,
            _ => false,
        };
        if failed {
            self.failures.fetch_add(1, Relaxed);
            self.metrics.failure.increment(1);
        } else {
            self.metrics.success.increment(1);
        }
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
        let min_calls = match self.config.trip {
            TripPolicy::Rate { minimum_calls, .. } => minimum_calls.min(self.window.capacity()),
            TripPolicy::ConsecutiveFailures(_) => u64::MAX,
        };
        let rates = self.window.record(failed, slow, min_calls);
        if !current {
            return;
        }
        match state_of(w) {
            State::Closed => match self.config.trip {
                TripPolicy::ConsecutiveFailures(n) => {
                    if failed {
                        let run = self.count_consecutive(ticket.epoch);
                        if run >= n {
                            self.transition(
                                w,
                                State::Open,
                                || format!("{run} consecutive failures"),
                                describe,
                            );
                        }
                    } else if self.consecutive.load(Relaxed) as u32 != 0 {
                        self.consecutive.store(0, Relaxed);
                    }
                }
                TripPolicy::Rate { failure_rate, .. } => {
                    let Some(r) = rates else { return };
                    if r.calls < min_calls {
                        return;
                    }
                    let slow_trip = self.config.slow_call_duration.is_some()
                        && r.slow_rate() >= self.config.slow_call_rate;
                    if r.failure_rate() >= failure_rate {
                        let reason = || {
                            format!(
                                "failure rate {:.0}% >= {:.0}% over {} calls",
                                r.failure_rate() * 100.0,
                                failure_rate * 100.0,
                                r.calls
                            )
                        };
                        self.transition(w, State::Open, reason, describe);
                    } else if slow_trip {
                        let reason = || {
                            format!(
                                "slow-call rate {:.0}% >= {:.0}% over {} calls",
                                r.slow_rate() * 100.0,
                                self.config.slow_call_rate * 100.0,
                                r.calls
                            )
                        };
                        self.transition(w, State::Open, reason, describe);
                    }
                }
            },
            State::HalfOpen if ticket.probe => {
                if failed || slow {
                    let why = if failed {
                        "a probe failed"
                    } else {
                        "a probe was slow"
                    };
                    self.transition(w, State::Open, || why.to_owned(), describe);
                } else if let Some(w) = self.update_period(ticket.epoch, |w| w + OK)
                    && ok_of(w) >= self.config.half_open_probes
                {
                    self.transition(
                        w,
                        State::Closed,
                        || "all probes succeeded".to_owned(),
                        String::new,
                    );
                }
            }
            _ => {}
        }
    }

    /// Applies `change` to the state word if it is still in `epoch`'s period; the new word, or
    /// `None` when the period has ended.
    fn update_period(&self, epoch: u64, change: impl Fn(u64) -> u64) -> Option<u64> {
        let mut w = self.state.load(Acquire);
        while epoch_of(w) == epoch {
            match self
                .state
                .compare_exchange_weak(w, change(w), AcqRel, Acquire)
            {
                Ok(_) => return Some(change(w)),
                Err(actual) => w = actual,
            }
        }
        None
    }

    /// Counts one more consecutive failure in the closed period `epoch`; the run so far.
    fn count_consecutive(&self, epoch: u64) -> u32 {
        let tag = epoch << 32;
        let mut cur = self.consecutive.load(Acquire);
        loop {
            let run = if cur & !u64::from(u32::MAX) == tag {
                cur as u32
            } else {
                0
            };
            let next = tag | u64::from(run.saturating_add(1));
            match self
                .consecutive
                .compare_exchange_weak(cur, next, AcqRel, Acquire)
            {
                Ok(_) => return run.saturating_add(1),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Moves to `to` from any state (manual control).
    fn force(&self, to: State, why: &'static str) {
        loop {
            let w = self.state.load(Acquire);
            if self.transition(w, to, || why.to_owned(), String::new) {
                return;
            }
        }
    }

    /// Moves from the period of the state word `from` to `to`; `false` if the period ended
    /// meanwhile. (Probe counts may have moved: they belong to the period being left.)
    fn transition(
        &self,
        from: u64,
        to: State,
        reason: impl FnOnce() -> String,
        failure: impl FnOnce() -> String,
    ) -> bool {
        let mut t = lock(&self.transitions);
        if period(self.state.load(Acquire)) != period(from) {
            return false;
        }
        let from_state = state_of(from);
        let now = Instant::now();
        let mut open_for = None;
        match to {
            State::Open => {
                if from_state == State::HalfOpen {
                    t.reopens = t.reopens.saturating_add(1);
                }
                let wait = self.config.open_wait;
                let nominal = wait.nominal(t.reopens).as_secs_f64();
                let spread = if wait.jitter > 0.0 {
                    t.rng.random_range(-wait.jitter..wait.jitter)
                } else {
                    0.0
                };
                let d = Duration::from_secs_f64((nominal * (1.0 + spread)).max(0.0));
                self.open_until.store(self.nanos(now + d), Release);
                open_for = Some(d);
                let failure = failure();
                if !failure.is_empty() {
                    t.last_failure = Some(failure);
                }
            }
            State::HalfOpen => {}
            State::Closed => {
                t.reopens = 0;
                self.window.reset();
                self.consecutive.store(0, Release);
            }
            State::ForcedOpen | State::Disabled => {}
        }
        // A swap, not a compare: probe counts that moved since `from` belong to the period
        // that ends here, and every other writer compares the epoch.
        self.state.swap(word(epoch_of(from) + 1, to), AcqRel);
        t.since = now;
        drop(t);
        let event = BreakerEvent {
            breaker: self.name.clone(),
            from: from_state,
            to,
            reason: reason(),
            open_for,
        };
        self.metrics.state.set(to.code() as f64);
        self.metrics.transitions.increment(1);
        match to {
            State::Open | State::ForcedOpen => {
                tracing::warn!(breaker = %self.name, from = %from_state, to = %to, reason = %event.reason, ?open_for, "circuit breaker opened")
            }
            _ => {
                tracing::info!(breaker = %self.name, from = %from_state, to = %to, reason = %event.reason, "circuit breaker state changed")
            }
        }
        if let Some(hook) = &self.hook {
            hook(&event);
        }
        let _ = self.events.send(event);
        true
    }
}
