//! The open wait's timer: lets a rejected call skip the clock.
//!
//! While a breaker is open every call is rejected until the open wait ends, and knowing
//! whether it has ended takes a clock read, which is most of what a rejection costs. When a
//! breaker opens inside a Tokio runtime with timers, [`OpenTimer::arm`] marks the open period
//! as *quiet* and sets a timer that clears the mark [`SLACK`] before the wait ends. A
//! rejection that finds its period marked reads no clock; from the timer's firing to the end
//! of the wait rejections read the clock as before, so the moment the breaker lets probes
//! through is what it was, to the nanosecond, as long as the timer fires no more than the
//! slack late (its millisecond resolution takes up to 1 ms of it).
//!
//! When the timer is later than that (a runtime too busy to run it, or one no longer driven),
//! two guards bound the overrun. Every [`CHECK_EVERY`]th rejection reads the clock anyway
//! ([`OpenTimer::is_quiet`] is given the rejection count), so at most that many calls past the
//! wait are rejected; and the timer's task clears the mark when it is dropped as well as when
//! it fires, so a runtime that shuts down takes its marks with it.
//!
//! Without a runtime, or on one built without `enable_time`, nothing is armed and every
//! rejection reads the clock. Tokio reports a missing timer driver as a panic, which is caught
//! and remembered (its message is printed once per breaker); under `panic = "abort"` it would
//! abort instead, so build runtimes that use breakers with timers (`#[tokio::main]` does, and
//! the breaker's call timeouts need them anyway). Under a paused Tokio clock the timer is a
//! pending timer like any other: auto-advance may jump to it.

// In the loom models a breaker never arms a timer (a model has no Tokio timers): the arming
// half of this file is unused there.
#![cfg_attr(floodgate_loom, allow(dead_code, unused_imports))]

use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tokio::time::Instant;

/// How long before the end of the wait the timer fires.
pub(crate) const SLACK: Duration = Duration::from_millis(2);

/// One rejection in this many reads the clock even while the period is marked quiet.
pub(crate) const CHECK_EVERY: u64 = 64;

/// The quiet mark of the current open period, and whether timers can be set at all.
#[derive(Debug, Default)]
pub(crate) struct OpenTimer {
    /// `epoch + 1` of the open period marked quiet; 0 when none is.
    quiet: Arc<AtomicU64>,
    /// Set after arming failed for want of a timer driver.
    unavailable: AtomicBool,
}

/// Clears the mark for one period when the timer fires or its task is dropped.
struct Clear {
    quiet: Arc<AtomicU64>,
    tag: u64,
}

impl Drop for Clear {
    fn drop(&mut self) {
        let _ = self.quiet.compare_exchange(self.tag, 0, AcqRel, Relaxed);
    }
}

impl OpenTimer {
    /// Whether the open period `epoch` is known not to have ended, without reading a clock;
    /// `rejections` is the breaker's rejection count, so one call in [`CHECK_EVERY`] checks.
    #[inline]
    pub(crate) fn is_quiet(&self, epoch: u64, rejections: u64) -> bool {
        self.quiet.load(Acquire) == epoch + 1 && !rejections.is_multiple_of(CHECK_EVERY)
    }

    /// Marks the open period `epoch`, which ends at `until`, as quiet until [`SLACK`] before
    /// `until`; does nothing outside a runtime with timers or for a wait shorter than the slack.
    pub(crate) fn arm(&self, epoch: u64, until: Instant, now: Instant) {
        #[cfg(floodgate_loom)]
        let _ = (epoch, until, now);
        #[cfg(not(floodgate_loom))]
        {
            let Some(fire_at) = until.checked_sub(SLACK).filter(|at| *at > now) else {
                return;
            };
            if self.unavailable.load(Relaxed) {
                return;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let sleep = match std::panic::catch_unwind(|| tokio::time::sleep_until(fire_at)) {
                Ok(sleep) => sleep,
                Err(_) => {
                    self.unavailable.store(true, Relaxed);
                    return;
                }
            };
            let tag = epoch + 1;
            self.quiet.store(tag, Release);
            let clear = Clear {
                quiet: self.quiet.clone(),
                tag,
            };
            // Dropped when the timer fires, or with the task if the runtime shuts down first.
            runtime.spawn(async move {
                let _clear = clear;
                sleep.await;
            });
        }
    }
}

#[cfg(all(test, not(floodgate_loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_mark_holds_until_the_slack_before_the_wait_ends() {
        let timer = OpenTimer::default();
        let now = Instant::now();
        timer.arm(7, now + Duration::from_secs(1), now);
        assert!(timer.is_quiet(7, 1));
        assert!(
            !timer.is_quiet(7, CHECK_EVERY),
            "every CHECK_EVERY-th call reads the clock"
        );
        assert!(!timer.is_quiet(8, 1), "another period is never quiet");
        tokio::time::sleep_until(now + Duration::from_secs(1) - SLACK - Duration::from_millis(1))
            .await;
        assert!(timer.is_quiet(7, 1));
        tokio::time::sleep_until(now + Duration::from_secs(1) - SLACK).await;
        tokio::task::yield_now().await;
        assert!(!timer.is_quiet(7, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_shorter_than_the_slack_is_never_quiet() {
        let timer = OpenTimer::default();
        let now = Instant::now();
        timer.arm(1, now + SLACK, now);
        assert!(!timer.is_quiet(1, 1));
    }

    #[test]
    fn nothing_is_armed_without_a_runtime_or_without_timers() {
        let timer = OpenTimer::default();
        let now = Instant::now();
        timer.arm(1, now + Duration::from_secs(5), now);
        assert!(!timer.is_quiet(1, 1));

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            timer.arm(2, now + Duration::from_secs(5), now);
        });
        assert!(!timer.is_quiet(2, 1));
        assert!(timer.unavailable.load(Relaxed));
    }

    #[test]
    fn a_runtime_that_shuts_down_clears_its_marks() {
        let timer = OpenTimer::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let now = Instant::now();
            timer.arm(3, now + Duration::from_secs(60), now);
        });
        assert!(timer.is_quiet(3, 1));
        drop(rt);
        assert!(!timer.is_quiet(3, 1));
    }
}
