//! What one delivery attempt's answer means: delivered, retry (and when, and whether the
//! destination's breaker should count it), or never retry.
//!
//! | answer | verdict | breaker |
//! |---|---|---|
//! | 2xx | delivered | success |
//! | 429, 503 | retry no sooner than `Retry-After` (seconds or HTTP date, clamped) | ignored: the receiver is pacing us, not failing |
//! | 408, other 5xx, 3xx (redirects are not followed), timeout, connection error | retry on the schedule | failure |
//! | 410 Gone | permanent; the destination is disabled until re-enabled | ignored |
//! | other 4xx | permanent (dead, never retried) | ignored |
//!
//! ```
//! use std::time::Duration;
//! use floodgate_server::webhook::classify::{Verdict, classify_status};
//!
//! let max = Duration::from_secs(3600);
//! assert_eq!(classify_status(204, None, max), Verdict::Delivered);
//! assert_eq!(
//!     classify_status(429, Some("120"), max),
//!     Verdict::RetryAfter(Duration::from_secs(120))
//! );
//! assert_eq!(classify_status(410, None, max), Verdict::Gone);
//! assert_eq!(classify_status(404, None, max), Verdict::Permanent);
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::delivery::Verdict;

/// The verdict on an HTTP answer with `status` and its `Retry-After` header, if any; a
/// `Retry-After` longer than `max_retry_after` is clamped to it.
pub fn classify_status(
    status: u16,
    retry_after: Option<&str>,
    max_retry_after: Duration,
) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 503 => {
            let wait = retry_after
                .and_then(|v| parse_retry_after(v, Utc::now()))
                .unwrap_or(Duration::ZERO);
            Verdict::RetryAfter(wait.min(max_retry_after))
        }
        410 => Verdict::Gone,
        408 => Verdict::Retry,
        400..=499 => Verdict::Permanent,
        _ => Verdict::Retry,
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (how long from `now` until then;
/// zero for a date in the past). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 with "GMT".
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn every_class_of_answer() {
        for (status, expected) in [
            (200, Verdict::Delivered),
            (201, Verdict::Delivered),
            (299, Verdict::Delivered),
            (301, Verdict::Retry),
            (307, Verdict::Retry),
            (400, Verdict::Permanent),
            (401, Verdict::Permanent),
            (404, Verdict::Permanent),
            (408, Verdict::Retry),
            (410, Verdict::Gone),
            (422, Verdict::Permanent),
            (429, Verdict::RetryAfter(Duration::ZERO)),
            (500, Verdict::Retry),
            (502, Verdict::Retry),
            (503, Verdict::RetryAfter(Duration::ZERO)),
            (504, Verdict::Retry),
        ] {
            assert_eq!(classify_status(status, None, MAX), expected, "{status}");
        }
        assert!(Verdict::Retry.is_breaker_failure());
        assert!(!Verdict::RetryAfter(Duration::ZERO).is_breaker_failure());
        assert!(!Verdict::Gone.is_breaker_failure());
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_clamped() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 12:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            classify_status(503, Some("999999"), MAX),
            Verdict::RetryAfter(MAX),
            "clamped"
        );
    }
}
