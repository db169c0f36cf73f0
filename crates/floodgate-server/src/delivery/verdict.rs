//! What one delivery attempt's answer means, whatever carried it: delivered, retry (when, and
//! whether the destination's breaker counts it), never retry, or the destination is gone.
//!
//! ```
//! use floodgate_server::delivery::Verdict;
//!
//! assert!(Verdict::Retry.is_breaker_failure());
//! assert!(!Verdict::Permanent.is_breaker_failure());
//! ```

use std::time::Duration;

/// The verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered (an HTTP 2xx, a broker's acknowledgement): done.
    Delivered,
    /// The receiver asked to wait (an HTTP 429/503, a broker's flow control): retry no sooner
    /// than this; not a breaker failure.
    RetryAfter(Duration),
    /// A failure worth retrying on the schedule (a timeout, a refused connection, an HTTP 5xx);
    /// a breaker failure.
    Retry,
    /// The destination cannot be reached now (a broker that is down or did not confirm in
    /// time): a breaker failure, but the job waits without spending an attempt, keeping its
    /// place in its ordering key's line.
    Unavailable,
    /// The destination is gone for good (HTTP 410): never retry, and disable the destination
    /// until it is enabled again.
    Gone,
    /// The message itself is refused (an HTTP 4xx): never retry.
    Permanent,
}

impl Verdict {
    /// Whether the destination's breaker counts this attempt as a failure.
    pub fn is_breaker_failure(self) -> bool {
        matches!(self, Verdict::Retry | Verdict::Unavailable)
    }
}
