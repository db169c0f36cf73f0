//! GCRA (the generic cell rate algorithm) and the direct [`RateLimiter`].
//!
//! # Implementation
//!
//! A limiter of `rate` cells per period with a burst of `burst` keeps one number, the
//! *theoretical arrival time* (TAT): when the bucket would be empty again if no more cells were
//! taken. With `t` = the emission interval (`period / rate`) and `tau = t * burst` the burst
//! tolerance, taking `n` cells at `now` is allowed when
//! `max(tat, now) + n * t - now <= tau`, and then `tat` becomes `max(tat, now) + n * t`.
//! Otherwise the caller must wait until `max(tat, now) + n * t - tau`. One atomic
//! compare-and-swap per check; no background refill. A TAT in the past means a full bucket, so a
//! key whose TAT has passed carries no information and can be forgotten (see the keyed limiter).
//!
//! Waiting ([`RateLimiter::until_ready`]) *reserves*: it takes the cells at once, moving the
//! TAT past `now` if need be, and sleeps until they are due. Waiters are therefore served in
//! the order they arrived, one clock read and one sleep each, whichever clock the limiter
//! reads. A cancelled wait gives its cells back only while its reservation is still the last
//! one taken (the TAT is still the value it set, and moves back by their cost); behind a later
//! reservation the cells are lost rather than handed to a caller who would then run at the same
//! time as that later one, beyond the burst.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{AcqRel, Acquire},
};
use std::time::Duration;

use super::clock::{Clock, RateClock};
use super::error::{NotUntil, RateError};

/// The rate and burst of a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds between cells (`period / rate`).
    pub(crate) interval: u64,
    /// Cells that can be taken at once from a full bucket.
    pub(crate) burst: u32,
}

impl Quota {
    /// `rate` cells per second, with a burst of `rate` (at least 1).
    pub fn per_second(rate: u32) -> Result<Quota, RateError> {
        Quota::per(rate, Duration::from_secs(1))
    }

    /// `rate` cells per minute, with a burst of `rate`.
    pub fn per_minute(rate: u32) -> Result<Quota, RateError> {
        Quota::per(rate, Duration::from_secs(60))
    }

    /// `rate` cells per `period`, with a burst of `rate`.
    pub fn per(rate: u32, period: Duration) -> Result<Quota, RateError> {
        if rate == 0 {
            return Err(RateError::InvalidQuota("rate must be at least 1"));
        }
        let interval = u64::try_from(period.as_nanos() / u128::from(rate))
            .map_err(|_| RateError::InvalidQuota("period too long"))?;
        if interval == 0 {
            return Err(RateError::InvalidQuota(
                "rate too high for the period (more than 1 per ns)",
            ));
        }
        Ok(Quota {
            interval,
            burst: rate,
        })
    }

    /// The same rate with a burst of `burst` cells (at least 1).
    pub fn burst(self, burst: u32) -> Result<Quota, RateError> {
        if burst == 0 {
            return Err(RateError::InvalidQuota("burst must be at least 1"));
        }
        Ok(Quota { burst, ..self })
    }

    /// The time one cell takes to replenish.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The burst size.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    #[inline]
    fn tau(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    /// The GCRA step, whatever the bucket holds: the TAT after taking `n` cells at `now`
    /// (nanoseconds), and how long until they are due (zero: now). [`NotUntil::Never`] if `n`
    /// exceeds the burst.
    #[inline]
    pub(crate) fn reserve_step(
        &self,
        tat: u64,
        now: u64,
        n: u32,
    ) -> Result<(u64, Duration), NotUntil> {
        if n > self.burst {
            return Err(NotUntil::Never { burst: self.burst });
        }
        let next = tat
            .max(now)
            .saturating_add(self.interval.saturating_mul(u64::from(n)));
        let wait = (next - now).saturating_sub(self.tau());
        Ok((next, Duration::from_nanos(wait)))
    }

    /// The GCRA step for a caller that does not wait: the new TAT if the cells are due now,
    /// otherwise how long to wait.
    #[inline]
    pub(crate) fn step(&self, tat: u64, now: u64, n: u32) -> Result<u64, NotUntil> {
        match self.reserve_step(tat, now, n)? {
            (next, wait) if wait.is_zero() => Ok(next),
            (_, wait) => Err(NotUntil::Wait(wait)),
        }
    }

    /// Applies `step` to an atomic TAT (one compare-and-swap, retried on a race): what it
    /// returned beside the new TAT, or its refusal.
    #[inline]
    fn update<T>(
        tat: &AtomicU64,
        step: impl Fn(u64) -> Result<(u64, T), NotUntil>,
    ) -> Result<T, NotUntil> {
        let mut cur = tat.load(Acquire);
        loop {
            let (next, out) = step(cur)?;
            match tat.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => return Ok(out),
                Err(actual) => cur = actual,
            }
        }
    }

    /// [`step`](Self::step) on an atomic TAT.
    #[inline]
    pub(crate) fn take(&self, tat: &AtomicU64, now: u64, n: u32) -> Result<(), NotUntil> {
        Self::update(tat, |cur| Ok((self.step(cur, now, n)?, ())))
    }

    /// [`reserve_step`](Self::reserve_step) on an atomic TAT: the TAT it set and the wait.
    pub(crate) fn reserve(
        &self,
        tat: &AtomicU64,
        now: u64,
        n: u32,
    ) -> Result<(u64, Duration), NotUntil> {
        Self::update(tat, |cur| {
            let (next, wait) = self.reserve_step(cur, now, n)?;
            Ok((next, (next, wait)))
        })
    }

    /// The TAT after giving back `n` cells of the reservation that set it.
    pub(crate) fn refund_step(&self, reserved: u64, n: u32) -> u64 {
        reserved.saturating_sub(self.interval.saturating_mul(u64::from(n)))
    }
}

/// Runs its closure when dropped, unless disarmed: gives back a reservation whose wait was
/// cancelled.
pub(crate) struct OnCancel<F: FnMut()>(Option<F>);

impl<F: FnMut()> OnCancel<F> {
    pub(crate) fn new(f: F) -> Self {
        OnCancel(Some(f))
    }

    /// The wait completed: nothing to give back.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnMut()> Drop for OnCancel<F> {
    fn drop(&mut self) {
        if let Some(f) = &mut self.0 {
            f();
        }
    }
}

/// A rate limiter for one stream of events (GCRA, like governor's direct limiter).
///
/// Reads the [fast clock](RateClock::Fast) unless built [`with_clock`](Self::with_clock).
///
/// ```
/// use floodgate::rate::{NotUntil, Quota, RateClock, RateLimiter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), floodgate::rate::RateError> {
/// let limiter = RateLimiter::new(Quota::per_second(10)?.burst(2)?).with_clock(RateClock::Tokio);
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let Err(NotUntil::Wait(wait)) = limiter.check() else { panic!() };
/// assert_eq!(wait, std::time::Duration::from_millis(100));
/// limiter.until_ready().await; // sleeps 100 ms
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    quota: Quota,
    clock: Clock,
    tat: AtomicU64,
}

impl RateLimiter {
    /// A limiter with `quota`, reading the fast clock.
    pub fn new(quota: Quota) -> Self {
        RateLimiter {
            quota,
            clock: Clock::new(RateClock::Fast),
            tat: AtomicU64::new(0),
        }
    }

    /// The same limiter, full, reading `clock` ([`RateClock::Tokio`] in paused-time tests).
    pub fn with_clock(self, clock: RateClock) -> Self {
        RateLimiter {
            quota: self.quota,
            clock: Clock::new(clock),
            tat: AtomicU64::new(0),
        }
    }

    /// `rate` per second with a burst of `rate`; see [`Quota`] for other shapes.
    pub fn per_second(rate: u32) -> Result<Self, RateError> {
        Ok(RateLimiter::new(Quota::per_second(rate)?))
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes one cell now, or says how long until one is available.
    #[inline]
    pub fn check(&self) -> Result<(), NotUntil> {
        self.quota.take(&self.tat, self.clock.now(), 1)
    }

    /// Takes `n` cells at once; [`NotUntil::Never`] if `n` exceeds the burst.
    pub fn check_n(&self, n: u32) -> Result<(), NotUntil> {
        self.quota.take(&self.tat, self.clock.now(), n)
    }

    /// Waits until a cell is available and takes it.
    ///
    /// The cell is reserved at once and the wait is one sleep until it is due, so waiters are
    /// served in arrival order and nothing spins, whichever clock the limiter reads.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a wait that is dropped gives its cell back.
    pub async fn until_ready(&self) {
        let (reserved, wait) = self.reserve();
        if wait.is_zero() {
            return;
        }
        let refund = OnCancel::new(|| self.refund(reserved));
        tokio::time::sleep(wait).await;
        refund.disarm();
    }

    /// Takes one cell whatever the bucket holds: the TAT the reservation set, and how long
    /// until the cell is due.
    pub(crate) fn reserve(&self) -> (u64, Duration) {
        // One cell never exceeds a burst (at least 1).
        self.quota
            .reserve(&self.tat, self.clock.now(), 1)
            .unwrap_or_default()
    }

    /// Gives back the unused cell of the reservation that set the TAT to `reserved`, if no
    /// cell has been taken since.
    pub(crate) fn refund(&self, reserved: u64) {
        let _ = self.tat.compare_exchange(
            reserved,
            self.quota.refund_step(reserved, 1),
            AcqRel,
            Acquire,
        );
    }
}
