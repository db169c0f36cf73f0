//! The circuit breaker's engine: a state word with a lock-free admission path, a sliding
//! window of outcomes, and transitions under a lock.
//!
//! # Implementation
//!
//! The state lives in one atomic word together with the half-open probe counts:
//!
//! ```text
//!  u64:  [ epoch (37 bits) | probes ok (12) | probes admitted (12) | state (3) ]
//! ```
//!
//! Admission reads it: closed and disabled admit at once; open rejects without a clock read
//! while the period is marked quiet by its [timer](super::open_timer), and otherwise compares
//! the clock with `open_until`; half-open admits with a compare-and-swap that adds one admitted probe while
//! the count is below `half_open_probes`, so exactly that many probes get through however many
//! callers race. Each admitted call remembers the epoch it was admitted in, and its outcome
//! only counts if the epoch is still current: a slow call admitted while closed cannot re-open
//! a breaker that has since recovered. Because the probe counts share the word with the epoch,
//! "the epoch is still mine" and "give back my probe slot" (or "count my success") are one
//! atomic step ([`Engine::update_period`]): a stale probe can never land on the next half-open
//! period's counters, however the transitions interleave.
//!
//! Outcomes go to the [window](super::window); a closed-state success is one `fetch_add` and
//! takes no lock. Whether an outcome trips a closed breaker is one rule,
//! [`Engine::trip_reason`]; runs of consecutive failures are tagged with their closed period's
//! epoch, so a stale failure cannot count towards a later period. State changes are rare and
//! happen under a mutex that re-checks the state word (a compare against the word the caller
//! saw), then publish the new word, emit the event, update metrics and log.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::config::{BreakerConfig, TripPolicy, WindowKind};
use super::error::BreakerConfigError;
use super::events::{BreakerEvent, State};
use super::open_timer::OpenTimer;
use super::outcome::Outcome;
use super::stats::{BreakerStats, Counters};
use super::window::{CountWindow, Rates, TimeWindow, Window};
use crate::sync::{AtomicU64, Mutex, lock};

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

/// What changes only in a transition, under the lock.
#[derive(Debug)]
struct Transitions {
    reopens: u32,
    since: Instant,
    rng: SmallRng,
    last_failure: Option<String>,
}

/// One breaker's state, window, counters and event channel.
pub(crate) struct Engine {
    pub(crate) name: std::sync::Arc<str>,
    /// The name as open errors carry it (inline when short).
    pub(crate) error_name: super::BreakerName,
    pub(crate) config: BreakerConfig,
    base: Instant,
    state: AtomicU64,
    open_until: AtomicU64,
    /// Lets rejections skip the clock while the open wait is known not to have ended.
    timer: OpenTimer,
    /// Consecutive failures while closed, tagged with the closed period's epoch (high 32 bits)
    /// so that a stale failure cannot count towards a later period.
    consecutive: AtomicU64,
    window: Window,
    counters: Counters,
    transitions: Mutex<Transitions>,
    events: broadcast::Sender<BreakerEvent>,
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
    pub(crate) probe: bool,
    start: Option<Instant>,
}

impl Ticket {
    /// Makes the call's measured duration `took` (when slowness is tracked).
    /// (A duration longer than the clock can go back keeps the admission as the start.)
    pub(crate) fn set_duration(&mut self, took: Duration) {
        if self.start.is_some() {
            self.start = Instant::now().checked_sub(took).or(self.start);
        }
    }
}

impl Engine {
    /// A closed breaker with `config` (checked here).
    pub(crate) fn new(
        name: String,
        config: BreakerConfig,
        hook: Option<TransitionHook>,
    ) -> Result<Engine, BreakerConfigError> {
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
        let counters = Counters::new(&name);
        Ok(Engine {
            error_name: super::BreakerName::from(name.as_str()),
            name: name.into(),
            config,
            base: now,
            state: AtomicU64::new(word(0, State::Closed)),
            open_until: AtomicU64::new(0),
            timer: OpenTimer::default(),
            consecutive: AtomicU64::new(0),
            window,
            counters,
            transitions: Mutex::new(Transitions {
                reopens: 0,
                since: now,
                rng: SmallRng::seed_from_u64(seed),
                last_failure: None,
            }),
            events: broadcast::channel(64).0,
            hook,
        })
    }

    /// The state now.
    pub(crate) fn state(&self) -> State {
        state_of(self.state.load(Acquire))
    }

    /// Receives every state change from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.events.subscribe()
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// When the current (or last) open wait ends.
    fn open_until(&self) -> Instant {
        self.base + Duration::from_nanos(self.open_until.load(Acquire))
    }

    fn open_remaining(&self, now: Instant) -> Duration {
        Duration::from_nanos(
            self.open_until
                .load(Acquire)
                .saturating_sub(self.nanos(now)),
        )
    }

    /// Admits a call, or says until when the breaker stays open (`None`: forced open).
    ///
    /// A rejection while the open period is marked quiet by its [timer](OpenTimer) reads no
    /// clock; otherwise the clock decides whether the wait has passed.
    pub(crate) fn admit(&self) -> Result<Ticket, Option<Instant>> {
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
                    if self
                        .timer
                        .is_quiet(epoch, self.counters.rejected.load(Relaxed))
                        || self.nanos(Instant::now()) < self.open_until.load(Acquire)
                    {
                        return Err(self.reject(Some(self.open_until())));
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
                        // The wait is over: a retry may be let through at once.
                        return Err(self.reject(Some(self.open_until())));
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

    fn reject(&self, until: Option<Instant>) -> Option<Instant> {
        self.counters.count_rejected();
        until
    }

    /// Records the outcome of the call admitted with `ticket`; `describe` tells what failed,
    /// for health reports, should this outcome open the breaker.
    pub(crate) fn record(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        describe: impl FnOnce() -> String,
    ) {
        if outcome == Outcome::Ignored {
            self.counters.count_ignored();
            if ticket.probe {
                // Gives the slot back, so the count is the probes in flight and an ignored
                // probe's slot can be taken again; only within the ticket's own period.
                self.update_period(ticket.epoch, |w| w - ADMITTED);
            }
            return;
        }
        let w = self.state.load(Acquire);
        let failed = outcome.is_failure();
        let slow = match (ticket.start, self.config.slow_call_duration) {
            (Some(start), Some(limit)) => start.elapsed() >= limit,
            _ => false,
        };
        self.counters.count_outcome(failed, slow);
        let rates = self.window.record(failed, slow, self.minimum_calls());
        if epoch_of(w) != ticket.epoch {
            return;
        }
        match state_of(w) {
            State::Closed => {
                if let Some(reason) = self.trip_reason(ticket.epoch, failed, rates) {
                    self.transition(w, State::Open, || reason, describe);
                }
            }
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

    /// The calls the window must hold before its rates can trip the breaker (never, for a
    /// consecutive-failure trip).
    fn minimum_calls(&self) -> u64 {
        match self.config.trip {
            TripPolicy::Rate { minimum_calls, .. } => minimum_calls.min(self.window.capacity()),
            TripPolicy::ConsecutiveFailures(_) => u64::MAX,
        }
    }

    /// Whether a call that ended while the breaker was closed in period `epoch` trips it, and
    /// why:
    ///
    /// * `ConsecutiveFailures(n)`: a run of `n` or more failures in a row trips; a success ends
    ///   the run.
    /// * `Rate`: once the window holds its minimum of calls, a failure rate at or above the
    ///   threshold trips, or else, when slow calls are measured, a slow-call rate at or above
    ///   `slow_call_rate`. The rates are looked at only when the window reports them (`rates`:
    ///   after a failure or a slow call, or the success that brings it to the minimum).
    fn trip_reason(&self, epoch: u64, failed: bool, rates: Option<Rates>) -> Option<String> {
        match self.config.trip {
            TripPolicy::ConsecutiveFailures(n) => {
                if !failed {
                    self.end_failure_run();
                    return None;
                }
                let run = self.count_consecutive(epoch);
                (run >= n).then(|| format!("{run} consecutive failures"))
            }
            TripPolicy::Rate { failure_rate, .. } => {
                let r = rates.filter(|r| r.calls >= self.minimum_calls())?;
                let slow_rate = self.config.slow_call_rate;
                if r.failure_rate() >= failure_rate {
                    Some(format!(
                        "failure rate {:.0}% >= {:.0}% over {} calls",
                        r.failure_rate() * 100.0,
                        failure_rate * 100.0,
                        r.calls
                    ))
                } else if self.config.slow_call_duration.is_some() && r.slow_rate() >= slow_rate {
                    Some(format!(
                        "slow-call rate {:.0}% >= {:.0}% over {} calls",
                        r.slow_rate() * 100.0,
                        slow_rate * 100.0,
                        r.calls
                    ))
                } else {
                    None
                }
            }
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

    /// A success ends the run of consecutive failures (a store only when there is one).
    fn end_failure_run(&self) {
        if self.consecutive.load(Relaxed) as u32 != 0 {
            self.consecutive.store(0, Relaxed);
        }
    }

    /// Moves to `to` from any state (manual control).
    pub(crate) fn force(&self, to: State, why: &'static str) {
        loop {
            let w = self.state.load(Acquire);
            if self.transition(w, to, || why.to_owned(), String::new) {
                return;
            }
        }
    }

    /// Moves an open or closed breaker straight to half-open (loom models only).
    #[cfg(all(test, floodgate_loom))]
    pub(crate) fn enter_half_open(&self) {
        let w = self.state.load(Acquire);
        assert!(self.transition(w, State::HalfOpen, String::new, String::new));
    }

    /// A snapshot of the breaker.
    pub(crate) fn stats(&self) -> BreakerStats {
        let state = self.state();
        let t = lock(&self.transitions);
        let rates: Rates = self.window.rates();
        let calls = match &self.window {
            Window::Count(c) => c.total(),
            Window::Time(_) => rates.calls,
        };
        let c = &self.counters;
        BreakerStats {
            name: self.name.to_string(),
            state,
            in_state_for: t.since.elapsed(),
            retry_after: (state == State::Open).then(|| self.open_remaining(Instant::now())),
            window_calls: rates.calls,
            failure_rate: rates.failure_rate(),
            slow_rate: rates.slow_rate(),
            calls,
            failures: c.failures.load(Relaxed),
            slow: c.slow.load(Relaxed),
            ignored: c.ignored.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            reopens: t.reopens,
            last_failure: t.last_failure.clone(),
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
                self.timer.arm(epoch_of(from) + 1, now + d, now);
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
        self.counters.count_transition(to);
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
