//! Graceful shutdown: stop admitting, drain in-flight work by a deadline, then run every
//! shutdown hook, each isolated.
//!
//! A [`Shutdown`] hands out a [`CancellationToken`] (cancelled when shutdown starts) and a
//! [`TaskTracker`] (the work to drain). [`Shutdown::run`] goes through the phases in order:
//!
//! 1. **Stop admitting**: cancel the token (loops stop claiming new work) and close every
//!    registered [`Limiter`] (new acquires fail with `Closed`).
//! 2. **Drain**: wait until every tracked task has finished, at most `drain_timeout`.
//! 3. **Hooks**: run every registered hook concurrently (flush buffers, close pools). Each is
//!    isolated: an error, a panic or a timeout in one is collected and reported, and the others
//!    still run.
//!
//! The [`ShutdownReport`] says what happened and maps to an exit status: 0 only for a clean
//! shutdown. [`Shutdown::run_on_signal`] waits for SIGTERM or SIGINT first; a second signal
//! while shutting down exits the process at once (status 130). Call
//! [`Shutdown::listen_for_signals`] early (before announcing readiness) so that no signal
//! arrives before the handlers are in place.
//!
//! Async one-time initialisation that races (a shared client created on first use) needs no
//! hand-made lock: use [`tokio::sync::OnceCell`].
//!
//! ```
//! use std::sync::Arc;
//! use tokio::sync::OnceCell;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! static ANALYTICS: OnceCell<Arc<String>> = OnceCell::const_new();
//! async fn analytics() -> Arc<String> {
//!     ANALYTICS
//!         .get_or_init(|| async { Arc::new("connected".to_owned()) }) // runs once, even if raced
//!         .await
//!         .clone()
//! }
//! assert_eq!(*analytics().await, "connected");
//! # }
//! ```
//!
//! A whole shutdown:
//!
//! ```
//! use std::time::Duration;
//! use floodgate::shutdown::Shutdown;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = Shutdown::new(Duration::from_secs(10));
//! let token = shutdown.token();
//! shutdown.tracker().spawn(async move {
//!     token.cancelled().await; // a worker loop would stop claiming here
//!     tokio::time::sleep(Duration::from_millis(200)).await; // finish the job in hand
//! });
//! shutdown.on_shutdown("flush-metrics", || async { Ok::<_, String>(()) });
//! let report = shutdown.run().await;
//! assert!(report.is_clean());
//! assert_eq!(report.exit_code(), 0);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use tokio::time::Instant;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

use crate::Limiter;
use crate::isolate::isolate;
use crate::sync::{Mutex, lock};

type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Hook = (String, Box<dyn FnOnce() -> HookFuture + Send>);

struct Inner {
    drain_timeout: Duration,
    hook_timeout: Duration,
    token: CancellationToken,
    tracker: TaskTracker,
    limiters: Mutex<Vec<Limiter>>,
    hooks: Mutex<Vec<Hook>>,
    listening: std::sync::atomic::AtomicBool,
    signal: Mutex<Option<Signal>>,
}

/// Coordinates a graceful shutdown; see the [module docs](self). Clones share it.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("drain_timeout", &self.inner.drain_timeout)
            .field("started", &self.inner.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Which signal started the shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (e.g. from an orchestrator).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

/// A hook that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    /// The hook's name.
    pub name: String,
    /// What went wrong (its error, its panic message, or a timeout).
    pub error: String,
}

/// What a shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The signal that started it, if one did.
    pub signal: Option<Signal>,
    /// Whether every tracked task finished within the drain timeout.
    pub drained: bool,
    /// Tracked tasks still running when the drain timeout passed.
    pub unfinished: usize,
    /// Hooks that succeeded, by name.
    pub hooks_succeeded: Vec<String>,
    /// Hooks that failed, with why.
    pub hooks_failed: Vec<HookFailure>,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Drained in time and every hook succeeded.
    pub fn is_clean(&self) -> bool {
        self.drained && self.hooks_failed.is_empty()
    }

    /// 0 for a clean shutdown, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() { 0 } else { 1 }
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drained {
            write!(f, "drained cleanly")?;
        } else {
            write!(f, "timed out with {} unfinished tasks", self.unfinished)?;
        }
        write!(f, "; {} hooks succeeded", self.hooks_succeeded.len())?;
        for h in &self.hooks_failed {
            write!(f, "; hook {} failed: {}", h.name, h.error)?;
        }
        write!(f, " ({:.1?})", self.elapsed)
    }
}

impl Shutdown {
    /// A coordinator that waits at most `drain_timeout` for tracked work (hooks get 10 s
    /// each; see [`hook_timeout`](Self::hook_timeout)).
    pub fn new(drain_timeout: Duration) -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                drain_timeout,
                hook_timeout: Duration::from_secs(10),
                token: CancellationToken::new(),
                tracker: TaskTracker::new(),
                limiters: Mutex::new(Vec::new()),
                hooks: Mutex::new(Vec::new()),
                listening: std::sync::atomic::AtomicBool::new(false),
                signal: Mutex::new(None),
            }),
        }
    }

    /// How long each hook may run before it counts as failed (default 10 s). Must be called
    /// before the coordinator is cloned.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hook_timeout = timeout;
        }
        self
    }

    /// Cancelled when shutdown starts: select on it to stop admitting work.
    pub fn token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// The work to drain: spawn through it (or `track_future`) what must finish first.
    pub fn tracker(&self) -> TaskTracker {
        self.inner.tracker.clone()
    }

    /// Closes `limiter` when shutdown starts.
    pub fn close_on_shutdown(&self, limiter: &Limiter) {
        lock(&self.inner.limiters).push(limiter.clone());
    }

    /// Registers a hook to run after draining. Hooks run concurrently; each one's error,
    /// panic or timeout is reported without stopping the others.
    pub fn on_shutdown<F, Fut, E>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let run: Box<dyn FnOnce() -> HookFuture + Send> =
            Box::new(move || Box::pin(hook().map(|r| r.map_err(|e| e.to_string()))));
        lock(&self.inner.hooks).push((name.into(), run));
    }

    /// Starts the shutdown without running it (e.g. from an admin endpoint); `run` or
    /// `run_on_signal` then proceeds.
    pub fn trigger(&self) {
        self.inner.token.cancel();
    }

    /// Installs SIGTERM and SIGINT handlers now (before returning): the first signal starts
    /// the shutdown (cancels the token), a second one exits the process at once with status
    /// 130. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// If the handlers can't be installed.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        if self
            .inner
            .listening
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        let mut signals = Signals::install()?;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let first = signals.next().await;
            tracing::info!(signal = ?first, "shutdown signal received; draining");
            *lock(&inner.signal) = Some(first);
            inner.token.cancel();
            let second = signals.next().await;
            tracing::error!(signal = ?second, "second signal: exiting without waiting");
            eprintln!("second signal ({second:?}): exiting without waiting for the shutdown");
            std::process::exit(130);
        });
        Ok(())
    }

    /// Listens for signals (see [`listen_for_signals`](Self::listen_for_signals)), waits for
    /// the first one (or [`trigger`](Self::trigger)), then runs the shutdown.
    ///
    /// # Panics
    ///
    /// If the signal handlers can't be installed, or outside a Tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while it waits for the signal: the handlers stay installed and a later call
    /// waits again. Once the shutdown has started, as [`run`](Self::run).
    pub async fn run_on_signal(&self) -> ShutdownReport {
        if let Err(e) = self.listen_for_signals() {
            panic!("installing signal handlers: {e}");
        }
        self.inner.token.cancelled().await;
        let mut report = self.run().await;
        report.signal = *lock(&self.inner.signal);
        report
    }

    /// Runs the shutdown now: stop admitting, drain, hooks.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. The first poll starts the shutdown for good (the token is cancelled,
    /// the limiters and the tracker closed). Dropping the future while it drains leaves the
    /// hooks registered, so a later `run` drains again and runs them; dropping it while the
    /// hooks run cancels them where they stand, and they don't run again.
    pub async fn run(&self) -> ShutdownReport {
        let start = Instant::now();
        let inner = &self.inner;
        inner.token.cancel();
        for limiter in lock(&inner.limiters).iter() {
            limiter.close();
        }
        inner.tracker.close();
        let drained = tokio::time::timeout(inner.drain_timeout, inner.tracker.wait())
            .await
            .is_ok();
        let unfinished = inner.tracker.len();
        if !drained {
            tracing::warn!(unfinished, timeout = ?inner.drain_timeout, "drain timed out");
        }
        let hooks: Vec<Hook> = std::mem::take(&mut *lock(&inner.hooks));
        let hook_timeout = inner.hook_timeout;
        let outcomes = join_all(hooks.into_iter().map(|(name, hook)| async move {
            // `hook()` runs inside the isolated future, so a panic while making it is caught too.
            let outcome = match isolate(async move { hook().await }, Some(hook_timeout)).await {
                Ok(result) => result,
                // "panicked: <message>" or "timed out after <timeout>".
                Err(isolated) => Err(isolated.to_string()),
            };
            (name, outcome)
        }))
        .await;
        let mut report = ShutdownReport {
            signal: None,
            drained,
            unfinished,
            hooks_succeeded: Vec::new(),
            hooks_failed: Vec::new(),
            elapsed: Duration::ZERO,
        };
        for (name, outcome) in outcomes {
            match outcome {
                Ok(()) => report.hooks_succeeded.push(name),
                Err(error) => {
                    tracing::error!(hook = %name, %error, "shutdown hook failed");
                    report.hooks_failed.push(HookFailure { name, error });
                }
            }
        }
        report.elapsed = start.elapsed();
        tracing::info!(%report, "shutdown finished");
        report
    }
}

/// SIGTERM and SIGINT streams, installed eagerly so no signal is missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}
