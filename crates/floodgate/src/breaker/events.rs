//! Breaker states and the events published on every state change.

use std::sync::Arc;
use std::time::Duration;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open wait has passed.
    Open,
    /// A few probe calls are let through to test the dependency.
    HalfOpen,
    /// Rejects every call until [`reset`](super::CircuitBreaker::reset).
    ForcedOpen,
    /// Lets every call through and never trips (outcomes are still counted).
    Disabled,
}

impl State {
    pub(crate) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    /// Whether calls are being rejected (open or forced open).
    pub fn is_open(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }

    /// The lowercase name used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change of one breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerEvent {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state it left.
    pub from: State,
    /// The state it entered.
    pub to: State,
    /// Why, in a few words (e.g. `failure rate 60% >= 50% over 20 calls`).
    pub reason: String,
    /// For a change to `Open`: how long it stays open.
    pub open_for: Option<Duration>,
}
