//! Isolation: run a future so that its panic, or its running too long, becomes an error
//! instead of taking the caller down with it.
//!
//! [`isolate`] is the one place where floodgate catches panics and applies a timeout around
//! user code: the [processor](crate::processor)'s handlers, [single-flight](crate::flight)
//! work and [shutdown](crate::shutdown) hooks all run through it. [`panic_message`] turns a
//! panic payload into its message for code that catches panics itself (a panicked task's
//! `JoinError`, for example).
//!
//! ```
//! use std::time::Duration;
//! use floodgate::isolate::{Isolated, isolate};
//!
//! async fn parse(input: &str) -> u32 {
//!     input.parse().expect("the caller sends digits")
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! assert_eq!(isolate(parse("42"), None).await, Ok(42));
//!
//! let panicked = isolate(parse("forty-two"), None).await.unwrap_err();
//! assert!(matches!(&panicked, Isolated::Panicked(m) if m.starts_with("the caller sends digits")));
//!
//! let slow = tokio::time::sleep(Duration::from_secs(60));
//! let timed_out = isolate(slow, Some(Duration::from_secs(1))).await.unwrap_err();
//! assert_eq!(timed_out, Isolated::TimedOut(Duration::from_secs(1)));
//! assert_eq!(timed_out.to_string(), "timed out after 1s");
//! # }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

pub use crate::panic::panic_message;

/// Why an [`isolate`]d future has no output.
///
/// The messages read `panicked: <message>` and `timed out after <duration>`, so callers can
/// prefix them with what ran (`"{method} {isolated}"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Isolated {
    /// The future panicked; the panic's message (see [`panic_message`]).
    #[error("panicked: {0}")]
    Panicked(String),
    /// The future did not finish within this timeout, and was dropped.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// Runs `fut` to completion, catching a panic in it and, with a `timeout`, dropping it when it
/// runs longer.
///
/// Only the polls of `fut` are guarded: code that runs before `fut` exists (the call that makes
/// it) is not, so pass `async move { make().await }` to guard that as well.
///
/// The future is treated as unwind safe (it is wrapped in [`AssertUnwindSafe`]): after a panic
/// it is dropped and never polled again, but state it shared with others (through an `Arc`, a
/// lock) may be left half-updated. Don't isolate work whose shared state can't stand that.
///
/// # Panics
///
/// With a `timeout`, outside a Tokio runtime (the timer is Tokio's).
///
/// # Cancel safety
///
/// As cancel safe as `fut`: dropping the returned future drops `fut` where it stands.
///
/// # Examples
///
/// See the [module documentation](self).
pub async fn isolate<F: Future>(fut: F, timeout: Option<Duration>) -> Result<F::Output, Isolated> {
    let caught = AssertUnwindSafe(fut).catch_unwind();
    let outcome = match timeout {
        None => caught.await,
        Some(limit) => tokio::time::timeout(limit, caught)
            .await
            .map_err(|_| Isolated::TimedOut(limit))?,
    };
    outcome.map_err(|panic| Isolated::Panicked(panic_message(&*panic)))
}
