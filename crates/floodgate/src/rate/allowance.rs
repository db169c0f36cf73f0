//! [`Allowance`]: what is left of a quota after a take, for answers that advertise it (the
//! IETF `RateLimit` header fields, a service's JSON).

use std::time::Duration;

use super::gcra::Quota;

/// What a key has left after an allowed take.
///
/// ```
/// use floodgate::rate::{KeyedRateLimiter, Quota, RateClock};
///
/// let per_key = KeyedRateLimiter::new(Quota::per_second(10).unwrap(), 100)
///     .unwrap()
///     .with_clock(RateClock::Tokio);
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
/// # rt.block_on(async {
/// let left = per_key.take(&"tenant-1", 3).unwrap();
/// assert_eq!(left.remaining, 7);
/// assert_eq!(left.reset_after.as_millis(), 300); // full again in 3 intervals
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Cells that may still be taken at once now.
    pub remaining: u32,
    /// How long until the bucket is full again (nothing taken counts any more).
    pub reset_after: Duration,
    /// Whether a limiter enforced it: `false` when a distributed limiter could not reach its
    /// store and its failure policy let the call through.
    pub enforced: bool,
}

impl Allowance {
    /// The allowance left when the key's theoretical arrival time is `ahead` past now.
    pub(crate) fn after(quota: &Quota, ahead: Duration) -> Allowance {
        let interval = quota.interval().as_nanos().max(1);
        // Cells the TAT's lead already uses, rounded up: a partial cell is not available.
        let used = ahead.as_nanos().div_ceil(interval);
        let burst = u128::from(quota.burst_size());
        Allowance {
            remaining: u32::try_from(burst.saturating_sub(used)).unwrap_or(0),
            reset_after: ahead,
            enforced: true,
        }
    }
}
