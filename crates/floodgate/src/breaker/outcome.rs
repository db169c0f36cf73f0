//! How a call's result counts for a breaker, with ready classifiers.

/// What a finished call means for the health of the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; counts towards opening.
    Failure,
    /// Does not count either way: e.g. rate-limited (429), a deadlock the caller retries,
    /// a cancelled call.
    Ignored,
    /// Counts as a failure, and must never be retried: e.g. an authentication error.
    Permanent,
}

impl Outcome {
    /// Whether this outcome counts as a failure of the dependency.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Permanent)
    }

    /// `Success` for `Ok`, `Failure` for `Err`: the default classification.
    pub fn of<T, E>(result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    /// Classifies an HTTP status code from the dependency's point of view:
    ///
    /// | status | outcome | why |
    /// |---|---|---|
    /// | 1xx, 2xx, 3xx | `Success` | |
    /// | 401, 403, 407 | `Permanent` | credentials are wrong; retrying will not help |
    /// | 408, 5xx | `Failure` | the dependency is slow or broken |
    /// | 429 | `Ignored` | we are being rate-limited; the dependency is healthy |
    /// | other 4xx | `Success` | the request was wrong, the dependency answered fine |
    ///
    /// ```
    /// use floodgate::breaker::Outcome;
    /// assert_eq!(Outcome::from_http_status(503), Outcome::Failure);
    /// assert_eq!(Outcome::from_http_status(429), Outcome::Ignored);
    /// assert_eq!(Outcome::from_http_status(401), Outcome::Permanent);
    /// assert_eq!(Outcome::from_http_status(404), Outcome::Success);
    /// ```
    pub fn from_http_status(status: u16) -> Outcome {
        match status {
            401 | 403 | 407 => Outcome::Permanent,
            408 | 500..=599 => Outcome::Failure,
            429 => Outcome::Ignored,
            _ => Outcome::Success,
        }
    }

    /// Classifies the result of `tokio::time::timeout(..)`: a timeout is a `Failure`, else the
    /// inner result's [`Outcome::of`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use floodgate::breaker::Outcome;
    /// let slow = tokio::time::timeout(Duration::from_millis(10), std::future::pending::<Result<(), ()>>()).await;
    /// assert_eq!(Outcome::from_timeout(&slow), Outcome::Failure);
    /// # }
    /// ```
    pub fn from_timeout<T, E>(
        result: &Result<Result<T, E>, tokio::time::error::Elapsed>,
    ) -> Outcome {
        match result {
            Ok(inner) => Outcome::of(inner),
            Err(_) => Outcome::Failure,
        }
    }

    /// Classifies an I/O error: timeouts and connection failures are `Failure`s, permission
    /// errors `Permanent`, an interrupted call `Ignored`, anything else a `Failure`.
    pub fn from_io_error(error: &std::io::Error) -> Outcome {
        use std::io::ErrorKind::*;
        match error.kind() {
            PermissionDenied => Outcome::Permanent,
            Interrupted => Outcome::Ignored,
            _ => Outcome::Failure,
        }
    }
}
