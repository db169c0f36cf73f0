//! Named circuit breakers that callers in any language report to: [`Breakers`].
//!
//! Each `[breakers.NAME]` is a [`CircuitBreaker`] in a [`BreakerRegistry`] on this server. A
//! caller asks to make a call and gets a `call_id` (or a refusal while the breaker is open),
//! makes the call, and reports how it went with the time it took. While half-open, exactly
//! `half_open_probes` calls are admitted across every caller of this server. A call never
//! reported counts as failed once its deadline (`call_deadline`) passes, so a caller that
//! dies mid-call cannot hold a probe slot forever.
//!
//! With `redis_url`, every server publishes its breakers' opens and closes, and the others
//! follow within a second (see [`super::fanout`]): eventually consistent, each server still
//! deciding locally.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use floodgate_server::limits::breakers::{Breakers, Report};
//! use floodgate_server::limits::config::BreakerSpec;
//!
//! let spec = BreakerSpec { consecutive_failures: Some(1), ..BreakerSpec::default() };
//! let breakers = Breakers::new([("payments".to_owned(), spec)].into()).unwrap();
//! let call = breakers.admit("payments").unwrap();
//! breakers.report("payments", &call.call_id, Report::failure("timed out")).unwrap();
//! assert!(breakers.admit("payments").is_err()); // open now
//! # }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use floodgate::breaker::{
    BreakerRegistry, BreakerStats, CallPermit, CircuitBreaker, Outcome, State, UnknownNames,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::LimitError;
use super::book::Book;
use super::config::{BreakerSpec, check_name};

/// A call admitted and not yet reported.
struct Call {
    breaker: String,
    permit: CallPermit,
}

/// A call admitted.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its id, for the report.
    pub call_id: String,
    /// Whether it is a half-open probe.
    pub probe: bool,
    /// How long it may stay unreported.
    pub deadline: Duration,
}

/// How a call went, as its caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// It did its job.
    Success,
    /// It failed; counts towards opening.
    Failure,
    /// Counts neither way (a 429, a cancelled call).
    Ignored,
    /// It succeeded, slowly: counts as a slow call when the breaker tracks slowness.
    Slow,
}

/// A caller's report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The outcome.
    pub outcome: Reported,
    /// How long the call took, as the caller measured it.
    pub duration: Option<Duration>,
    /// What failed, for the breaker's last failure.
    pub error: Option<String>,
}

impl Report {
    /// A failure with its error.
    pub fn failure(error: impl Into<String>) -> Report {
        Report {
            outcome: Reported::Failure,
            duration: None,
            error: Some(error.into()),
        }
    }
}

/// Every named breaker and the calls admitted through them; see the [module docs](self).
pub struct Breakers {
    registry: BreakerRegistry,
    specs: BTreeMap<String, BreakerSpec>,
    calls: Book<Call>,
}

impl Breakers {
    /// The breakers of `specs`; errors name the key.
    pub fn new(specs: BTreeMap<String, BreakerSpec>) -> Result<Breakers, (String, String)> {
        let mut builder = BreakerRegistry::builder()
            .max_breakers(specs.len().max(1))
            .idle_ttl(None)
            .allowlist(specs.keys().cloned(), UnknownNames::Reject);
        for (name, spec) in &specs {
            check_name(name).map_err(|e| (format!("breakers.{name}"), e))?;
            let config = spec
                .breaker_config()
                .map_err(|e| (format!("breakers.{name}"), e))?;
            spec.deadline()
                .map_err(|e| (format!("breakers.{name}.call_deadline"), e))?;
            builder = builder.config_for(name.clone(), config);
        }
        let registry = builder
            .build()
            .map_err(|e| ("breakers".to_owned(), e.to_string()))?;
        for name in specs.keys() {
            // Every breaker exists from the start (listed, followed by other servers).
            registry
                .get(name)
                .map_err(|e| (format!("breakers.{name}"), e.to_string()))?;
        }
        Ok(Breakers {
            registry,
            specs,
            calls: Book::new(),
        })
    }

    /// The breaker called `name`.
    pub fn breaker(&self, name: &str) -> Result<CircuitBreaker, LimitError> {
        if !self.specs.contains_key(name) {
            return Err(LimitError::unknown("breaker", name, self.specs.keys()));
        }
        self.registry
            .get(name)
            .map_err(|e| LimitError::unknown("breaker", &e.to_string(), self.specs.keys()))
    }

    /// Whether no breaker is configured.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The registry (for following transitions).
    pub fn registry(&self) -> &BreakerRegistry {
        &self.registry
    }

    /// Admits a call through `name`, or refuses it while the breaker is open.
    pub fn admit(&self, name: &str) -> Result<Admitted, LimitError> {
        let breaker = self.breaker(name)?;
        let permit = breaker.try_acquire().map_err(|e| LimitError::BreakerOpen {
            breaker: name.to_owned(),
            retry_after: e.retry_after(),
        })?;
        let probe = permit.is_probe();
        let deadline = self.specs[name].deadline().expect("checked at start");
        let call = Call {
            breaker: name.to_owned(),
            permit,
        };
        let call_id = self.calls.insert(call, Instant::now() + deadline);
        Ok(Admitted {
            call_id,
            probe,
            deadline,
        })
    }

    /// Records the outcome of a call `name` admitted; the breaker's state after it.
    pub fn report(&self, name: &str, call_id: &str, report: Report) -> Result<State, LimitError> {
        let breaker = self.breaker(name)?;
        let call = self
            .calls
            .take(call_id, |c| c.breaker == name)
            .map_err(|gone| LimitError::call_gone(gone, call_id))?;
        let slow_limit = self.specs[name].slow_call.map(Duration::from_secs_f64);
        let (outcome, took) = match report.outcome {
            Reported::Success => (Outcome::Success, report.duration),
            Reported::Failure => (Outcome::Failure, report.duration),
            Reported::Ignored => (Outcome::Ignored, report.duration),
            // Slow means at least the breaker's slow-call duration, whatever was measured.
            Reported::Slow => (
                Outcome::Success,
                match (report.duration, slow_limit) {
                    (Some(d), Some(limit)) => Some(d.max(limit)),
                    (d, limit) => d.or(limit),
                },
            ),
        };
        let error = report.error.as_ref().map(|e| e as &dyn std::fmt::Display);
        match took {
            Some(took) => call.permit.record_took(outcome, took, error),
            None => call.permit.record(outcome, error),
        }
        Ok(breaker.state())
    }

    /// Closes `name` and forgets its window; its state after.
    pub fn reset(&self, name: &str) -> Result<State, LimitError> {
        let breaker = self.breaker(name)?;
        breaker.reset();
        tracing::info!(breaker = %name, "breaker reset through the API");
        Ok(breaker.state())
    }

    /// Every breaker's snapshot, by name.
    pub fn snapshot(&self) -> Vec<(BreakerStats, BreakerSpec)> {
        self.specs
            .iter()
            .filter_map(|(name, spec)| {
                let breaker = self.registry.get(name).ok()?;
                Some((breaker.stats(), spec.clone()))
            })
            .collect()
    }

    /// Counts calls unreported past their deadline as failed, until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        let expired = |call: Call| {
            tracing::info!(breaker = %call.breaker, "a call was not reported within its deadline: counted as failed");
            metrics::counter!("floodgate_breaker_calls_unreported_total", "breaker" => call.breaker.clone())
                .increment(1);
            call.permit.record(
                Outcome::Failure,
                Some(&"the call was not reported within its deadline"),
            );
        };
        self.calls.reap(expired, stop).await;
        // At shutdown, calls in flight are neither failures nor successes.
        for call in self.calls.drain() {
            call.permit.record(Outcome::Ignored, None);
        }
    }
}
