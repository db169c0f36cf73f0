//! Admitted calls awaiting their outcome: the public [`CallPermit`] and the guard of a call
//! run by [`CircuitBreaker::call`](super::CircuitBreaker::call).

use std::fmt::Display;
use std::time::Duration;

use super::circuit::CircuitBreaker;
use super::engine::{Engine, Ticket};
use super::outcome::Outcome;

/// Permission for one call, from [`CircuitBreaker::try_acquire`]; report how it went with
/// [`record`](Self::record). Dropping it unreported counts as `Ignored`.
#[derive(Debug)]
#[must_use = "report the call's outcome with record(); dropping the permit counts as Ignored"]
pub struct CallPermit {
    breaker: CircuitBreaker,
    ticket: Option<Ticket>,
}

impl CallPermit {
    pub(super) fn new(breaker: CircuitBreaker, ticket: Ticket) -> Self {
        CallPermit {
            breaker,
            ticket: Some(ticket),
        }
    }

    /// Reports the call's outcome; `error` describes a failure for health reports.
    pub fn record(mut self, outcome: Outcome, error: Option<&dyn Display>) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.engine.record(ticket, outcome, || {
                error.map_or_else(|| "failure".to_owned(), |e| e.to_string())
            });
        }
    }

    /// Reports the call's outcome with its duration as the caller measured it (a call made
    /// elsewhere, reported later): the breaker judges slowness from `took`, not from the time
    /// since the permit was given.
    pub fn record_took(mut self, outcome: Outcome, took: Duration, error: Option<&dyn Display>) {
        if let Some(mut ticket) = self.ticket.take() {
            ticket.set_duration(took);
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

/// Records `Ignored` if the call's future is dropped before its outcome is known.
pub(super) struct Pending<'a> {
    engine: &'a Engine,
    ticket: Option<Ticket>,
}

impl<'a> Pending<'a> {
    pub(super) fn new(engine: &'a Engine, ticket: Ticket) -> Self {
        Pending {
            engine,
            ticket: Some(ticket),
        }
    }

    /// Records the call's outcome (instead of `Ignored` on drop).
    pub(super) fn record(mut self, outcome: Outcome, describe: impl FnOnce() -> String) {
        if let Some(ticket) = self.ticket.take() {
            self.engine.record(ticket, outcome, describe);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.engine.record(ticket, Outcome::Ignored, String::new);
        }
    }
}
