//! [`RetryDecision`]: whether an error is worth another attempt.

use std::time::Duration;

use crate::breaker::Outcome;

/// What to do about a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after the policy's delay.
    Retry,
    /// Try again, but not before this delay (a server's `Retry-After`).
    RetryAfter(Duration),
    /// Do not try again: the error is permanent (e.g. bad credentials).
    DoNotRetry,
}

impl RetryDecision {
    /// Retries timeouts (408), rate limits (429) and server errors (5xx), honouring the
    /// response's `Retry-After` when given; never retries other 4xx (e.g. 401, 403, 404).
    ///
    /// ```
    /// use std::time::Duration;
    /// use floodgate::retry::RetryDecision;
    /// assert_eq!(RetryDecision::from_http_status(503, None), RetryDecision::Retry);
    /// assert_eq!(
    ///     RetryDecision::from_http_status(429, Some(Duration::from_secs(2))),
    ///     RetryDecision::RetryAfter(Duration::from_secs(2))
    /// );
    /// assert_eq!(RetryDecision::from_http_status(401, None), RetryDecision::DoNotRetry);
    /// ```
    pub fn from_http_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            408 | 429 | 500..=599 => {
                retry_after.map_or(RetryDecision::Retry, RetryDecision::RetryAfter)
            }
            _ => RetryDecision::DoNotRetry,
        }
    }

    /// From a breaker outcome: `Permanent` is never retried, anything else failed is.
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Permanent | Outcome::Success => RetryDecision::DoNotRetry,
            Outcome::Failure | Outcome::Ignored => RetryDecision::Retry,
        }
    }

    /// Retries I/O errors that are usually transient (timeouts, refused, reset, aborted,
    /// broken pipe, interrupted, would-block); not permission or invalid-input errors.
    pub fn from_io_error(error: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match error.kind() {
            TimedOut | ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
            | BrokenPipe | Interrupted | WouldBlock | UnexpectedEof => RetryDecision::Retry,
            _ => RetryDecision::DoNotRetry,
        }
    }

    /// Parses an HTTP `Retry-After` header given in seconds (the HTTP-date form returns
    /// `None`; compute the delay from the date yourself if your server sends it).
    pub fn parse_retry_after(value: &str) -> Option<Duration> {
        value.trim().parse::<u64>().ok().map(Duration::from_secs)
    }
}
