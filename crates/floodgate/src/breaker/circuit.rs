//! [`CircuitBreaker`]: the public handle over the breaker's engine (see `engine.rs`).

use std::fmt::Display;
use std::future::Future;

use tokio::sync::broadcast;

use super::config::BreakerConfig;
use super::engine::{Engine, TransitionHook};
use super::error::{BreakerConfigError, BreakerError};
use super::events::{BreakerEvent, State};
use super::outcome::Outcome;
use super::permit::{CallPermit, Pending};
use super::stats::BreakerStats;
use crate::sync::Arc;

/// A circuit breaker: stops calling a dependency that keeps failing, and tests it again after
/// a wait. Cloning gives another handle to the same breaker.
///
/// See the [module documentation](super) for an overview and an example.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    pub(super) engine: Arc<Engine>,
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
        Ok(CircuitBreaker {
            engine: Arc::new(Engine::new(name, config, hook)?),
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
        self.engine.state()
    }

    /// Receives every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.engine.subscribe()
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
            .map_err(|until| self.open_error(until))?;
        let pending = Pending::new(&self.engine, ticket);
        let result = match self.engine.config.call_timeout {
            None => op().await,
            Some(limit) => match tokio::time::timeout(limit, op()).await {
                Ok(result) => result,
                Err(_) => {
                    pending.record(Outcome::Failure, || format!("timed out after {limit:?}"));
                    return Err(BreakerError::Timeout(limit));
                }
            },
        };
        let outcome = classify(&result);
        match &result {
            Err(e) => pending.record(outcome, || e.to_string()),
            Ok(_) => pending.record(outcome, || "slow calls".to_owned()),
        }
        result.map_err(BreakerError::Inner)
    }

    /// Runs `op` through the breaker; when the breaker is open or the call fails, returns what
    /// `fallback` makes of the error instead (e.g. a cached answer).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call) while `op` runs; dropping the future while `fallback` runs
    /// cancels `fallback` (the call's outcome is already recorded).
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
            .map_err(|until| self.open_error(until))?;
        Ok(CallPermit::new(self.clone(), ticket))
    }

    fn open_error<E>(&self, until: Option<tokio::time::Instant>) -> BreakerError<E> {
        BreakerError::Open {
            name: self.engine.error_name.clone(),
            until,
        }
    }

    /// Moves an open or closed breaker straight to half-open (loom models only).
    #[cfg(all(test, floodgate_loom))]
    pub(crate) fn enter_half_open(&self) {
        self.engine.enter_half_open();
    }

    /// Closes the breaker and forgets the window and the re-open count.
    pub fn reset(&self) {
        self.engine.force(State::Closed, "reset");
    }

    /// Opens the breaker as a trip would: for its open wait, then half-open with probes (e.g.
    /// because another node saw the dependency fail). A no-op while it is open already.
    pub fn trip(&self) {
        if self.engine.state() != State::Open {
            self.engine.force(State::Open, "tripped from outside");
        }
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
        self.engine.stats()
    }
}
