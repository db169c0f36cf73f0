//! The limiter's engine: a permit counter with a lock-free fast path and a locked wait queue.
//!
//! # Implementation
//!
//! The free permits live in one atomic word together with the count of held permits and two
//! flags:
//!
//! ```text
//!  u64:  [ held (31 bits) | permits (31 bits) | SLOW | CLOSED ]
//! ```
//!
//! Every transition moves `permits` and `held` in the same atomic step (an acquire takes one
//! from `permits` and adds one to `held`; a direct hand-over to a waiter leaves both alone; a
//! shrink takes free permits without touching `held`), so [`Engine::active`] is one load and
//! always exact, whatever resize, close or release runs beside it. `drain` relies on that.
//!
//! * **Fast acquire** is a compare-and-swap that takes a permit while `permits > 0` and the
//!   limiter is open. It never takes the lock.
//! * **Fast release** is a compare-and-swap that returns a permit while `SLOW` is clear.
//! * `SLOW` is set (always under the lock) while somebody needs to see releases: there are
//!   queued waiters, a shrink left a *debt* of permits to swallow, or the limiter is closed and
//!   `drain` is counting. A release that sees `SLOW` takes the lock and pays the debt or hands
//!   its permit **directly** to the next waiter, so a queued waiter can't be overtaken by a
//!   newcomer on the fast path.
//!
//! Invariant: `SLOW` is clear only when there are no waiters and no debt and the limiter is
//! open; and whenever there are waiters or debt, `permits == 0`. Both are established under
//! the lock, and the only lock-free transitions (take while `permits > 0`, give while `SLOW` is
//! clear) can't break them. A waiter is queued only after a CAS that sets `SLOW` on a word that
//! still shows `permits == 0`, so a release racing with the enqueue either lands before (and
//! the waiter takes the permit) or sees `SLOW` (and hands it over): no wake-up is lost.
//!
//! Waiters live in a [`WaitList`]: a slab entry per waiter, owned by its acquire future. A
//! release marks the chosen entry `Granted` and wakes it; from then on the permit is held by
//! that future. If the future is dropped before it sees the grant, its drop hands the permit on
//! to the next waiter (or back to the counter). A waiter dropped while still waiting unlinks
//! itself. Wakers are always called after the lock is released.
//!
//! The limit itself is only changed under the lock: growing hands the new permits to waiters
//! (or the counter); shrinking takes free permits off the counter and records the rest as debt,
//! which releases pay before anyone else is served. Held permits are never revoked.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::Rejected;
use super::stats::{Counters, LimiterMetrics};
use super::waiters::{WaitList, WaiterState};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, lock};

const CLOSED: u64 = 0b01;
const SLOW: u64 = 0b10;
const SHIFT: u32 = 2;
const FIELD_BITS: u32 = 31;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const HELD_SHIFT: u32 = SHIFT + FIELD_BITS;
/// One free permit.
const ONE: u64 = 1 << SHIFT;
/// One held permit.
const HELD: u64 = 1 << HELD_SHIFT;

/// The largest limit the engine can represent: each field of the word must hold it.
pub(crate) const MAX_PERMITS: usize = FIELD_MASK as usize;

fn permits(word: u64) -> usize {
    ((word >> SHIFT) & FIELD_MASK) as usize
}

fn held(word: u64) -> usize {
    (word >> HELD_SHIFT) as usize
}

/// `n` free permits as a word delta.
fn free(n: usize) -> u64 {
    (n as u64) << SHIFT
}

/// Settings that do not change after construction.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) max_queue: usize,
    pub(crate) aging: Option<Duration>,
    pub(crate) acquire_timeout: Option<Duration>,
}

#[derive(Debug, Default)]
struct Inner {
    waiters: WaitList,
    closed: bool,
}

/// Result of the lock-free attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    Acquired,
    Closed,
    Empty,
}

#[derive(Debug)]
pub(crate) struct Engine {
    state: AtomicU64,
    limit: AtomicUsize,
    /// Permits a shrink still has to swallow. Written only under the lock; an atomic so that
    /// the fast paths can read it without the lock.
    debt: AtomicUsize,
    inner: Mutex<Inner>,
    drained: Notify,
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) metrics: LimiterMetrics,
}

impl Engine {
    pub(crate) fn new(limit: usize, config: Config) -> Self {
        debug_assert!((1..=MAX_PERMITS).contains(&limit));
        let metrics = LimiterMetrics::new(&config.name);
        metrics.limit.set(limit as f64);
        Engine {
            state: AtomicU64::new(free(limit)),
            limit: AtomicUsize::new(limit),
            debt: AtomicUsize::new(0),
            inner: Mutex::new(Inner::default()),
            drained: Notify::new(),
            config,
            counters: Counters::default(),
            metrics,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    pub(crate) fn available(&self) -> usize {
        permits(self.state.load(Acquire))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    /// Permits currently held (including grants not yet collected by their futures). One
    /// atomic load, exact at that instant whatever runs beside it.
    pub(crate) fn active(&self) -> usize {
        held(self.state.load(Acquire))
    }

    /// Waiters queued right now.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.inner).waiters.waiting()
    }

    /// Takes a permit without waiting and without touching the lock.
    pub(crate) fn try_fast(&self) -> Fast {
        let mut cur = self.state.load(Acquire);
        loop {
            if cur & CLOSED != 0 {
                return Fast::Closed;
            }
            if permits(cur) == 0 {
                return Fast::Empty;
            }
            match self
                .state
                .compare_exchange_weak(cur, cur - ONE + HELD, AcqRel, Acquire)
            {
                Ok(_) => {
                    self.on_acquired(held(cur) + 1);
                    return Fast::Acquired;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn on_acquired(&self, active: usize) {
        self.counters.acquired.fetch_add(1, Relaxed);
        if active > self.counters.peak.load(Relaxed) {
            self.counters.peak.fetch_max(active, Relaxed);
        }
        self.metrics.acquired.increment(1);
        self.metrics.active.increment(1.0);
    }

    /// Returns one permit.
    pub(crate) fn release(&self) {
        self.metrics.active.decrement(1.0);
        let mut cur = self.state.load(Acquire);
        while cur & SLOW == 0 {
            match self
                .state
                .compare_exchange_weak(cur, cur + ONE - HELD, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        let mut inner = lock(&self.inner);
        let waker = self.release_locked(&mut inner);
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes back the slot of a leased permit held past its lease.
    pub(crate) fn reclaim_expired(&self, ttl: Duration) {
        self.counters.expired.fetch_add(1, Relaxed);
        self.metrics.expired.increment(1);
        tracing::warn!(limiter = %self.config.name, ?ttl, "lease expired; permit reclaimed");
        self.release();
    }

    /// Takes back one held permit and gives it to the debt, the next waiter or the counter, in
    /// that order.
    fn release_locked(&self, inner: &mut Inner) -> Option<Waker> {
        let debt = self.debt.load(Acquire);
        if debt > 0 {
            self.debt.store(debt - 1, Release);
            self.update_locked(inner, 0, -1);
            return None;
        }
        if let Some(waker) = self.grant_next_locked(inner, false) {
            return waker;
        }
        self.update_locked(inner, 1, -1);
        None
    }

    /// Hands a permit to the best waiter, if any. `Some(waker)` when one was served. `new`
    /// says the permit is a new one (a grown limit), not one passed on by its holder.
    fn grant_next_locked(&self, inner: &mut Inner, new: bool) -> Option<Option<Waker>> {
        let key = inner.waiters.next(self.config.aging, Instant::now)?;
        let waker = inner.waiters.serve(key, WaiterState::Granted);
        self.metrics.queued.decrement(1.0);
        // A permit passed on stays held (by its new owner): one step, no dip in `active`.
        self.update_locked(inner, 0, if new { 1 } else { 0 });
        self.on_acquired(self.active());
        Some(waker)
    }

    /// Adds `n` free permits and `held` held ones to the word in one step, and clears `SLOW`
    /// if nobody needs it any more.
    fn update_locked(&self, inner: &Inner, n: usize, held: i64) {
        let clear = !inner.closed && self.debt.load(Acquire) == 0 && inner.waiters.waiting() == 0;
        let mut cur = self.state.load(Acquire);
        loop {
            let mut next = (cur + free(n)).wrapping_add_signed(held << HELD_SHIFT);
            if clear {
                next &= !SLOW;
            }
            if next == cur {
                break;
            }
            match self.state.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if inner.closed && self.active() == 0 {
            self.drained.notify_waiters();
        }
    }

    /// One poll of an acquire at `level`; `slot` holds the queued waiter's key between polls.
    pub(crate) fn poll_acquire(
        &self,
        slot: &mut Option<usize>,
        level: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Rejected>> {
        if let Some(key) = *slot {
            return self.poll_queued(slot, key, cx);
        }
        match self.try_fast() {
            Fast::Acquired => return Poll::Ready(Ok(())),
            Fast::Closed => return Poll::Ready(Err(self.reject(Rejected::Closed))),
            Fast::Empty => {}
        }
        let mut inner = lock(&self.inner);
        let mut cur = self.state.load(Acquire);
        loop {
            if cur & CLOSED != 0 {
                drop(inner);
                return Poll::Ready(Err(self.reject(Rejected::Closed)));
            }
            let next = if permits(cur) > 0 {
                cur - ONE + HELD
            } else if inner.waiters.waiting() >= self.config.max_queue {
                drop(inner);
                let capacity = self.config.max_queue;
                return Poll::Ready(Err(self.reject(Rejected::QueueFull { capacity })));
            } else if cur & SLOW == 0 {
                cur | SLOW
            } else {
                break;
            };
            match self.state.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) if held(next) > held(cur) => {
                    self.on_acquired(held(next));
                    return Poll::Ready(Ok(()));
                }
                Ok(_) => cur = next,
                Err(actual) => cur = actual,
            }
        }
        let key = inner
            .waiters
            .push(level, Instant::now(), cx.waker().clone());
        *slot = Some(key);
        self.metrics.queued.increment(1.0);
        Poll::Pending
    }

    fn poll_queued(
        &self,
        slot: &mut Option<usize>,
        key: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Rejected>> {
        let mut inner = lock(&self.inner);
        let node = inner.waiters.get_mut(key);
        match node.state {
            WaiterState::Waiting => {
                match &mut node.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            WaiterState::Granted => {
                let node = inner.waiters.remove(key);
                drop(inner);
                *slot = None;
                let waited = node.enqueued_at.elapsed();
                self.counters.record_wait(waited);
                self.metrics.wait.record(waited.as_secs_f64());
                Poll::Ready(Ok(()))
            }
            WaiterState::Closed => {
                inner.waiters.remove(key);
                drop(inner);
                *slot = None;
                Poll::Ready(Err(self.reject(Rejected::Closed)))
            }
        }
    }

    /// Forgets a queued waiter whose future was dropped, passing on a permit it was granted.
    pub(crate) fn cancel(&self, key: usize) {
        let mut inner = lock(&self.inner);
        let node = inner.waiters.remove(key);
        let waker = match node.state {
            WaiterState::Waiting => {
                self.metrics.queued.decrement(1.0);
                if inner.waiters.waiting() == 0 {
                    self.update_locked(&inner, 0, 0);
                }
                None
            }
            WaiterState::Granted => {
                // The grant never reached a caller: it does not count as acquired.
                self.counters.acquired.fetch_sub(1, Relaxed);
                self.metrics.active.decrement(1.0);
                self.release_locked(&mut inner)
            }
            WaiterState::Closed => None,
        };
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Counts a rejection and returns it.
    pub(crate) fn reject(&self, rejected: Rejected) -> Rejected {
        self.counters.count_rejection(&rejected);
        self.metrics.count_rejection(&rejected);
        tracing::debug!(limiter = %self.config.name, %rejected, "acquire rejected");
        rejected
    }

    /// Changes the limit. Growing serves waiters at once; shrinking never revokes a held permit.
    pub(crate) fn set_limit(&self, limit: usize) {
        debug_assert!((1..=MAX_PERMITS).contains(&limit));
        let mut wakers = Vec::new();
        let mut inner = lock(&self.inner);
        let old = self.limit.swap(limit, Relaxed);
        if limit > old {
            let mut add = limit - old;
            let debt = self.debt.load(Acquire);
            let paid = add.min(debt);
            self.debt.store(debt - paid, Release);
            add -= paid;
            while add > 0 {
                match self.grant_next_locked(&mut inner, true) {
                    Some(waker) => {
                        wakers.extend(waker);
                        add -= 1;
                    }
                    None => break,
                }
            }
            self.update_locked(&inner, add, 0);
        } else if limit < old {
            let mut take = old - limit;
            let mut cur = self.state.load(Acquire);
            loop {
                let n = take.min(permits(cur));
                match self
                    .state
                    .compare_exchange_weak(cur, cur - free(n), AcqRel, Acquire)
                {
                    Ok(_) => {
                        take -= n;
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
            if take > 0 {
                self.debt.fetch_add(take, AcqRel);
                self.state.fetch_or(SLOW, AcqRel);
            }
        }
        drop(inner);
        self.metrics.limit.set(limit as f64);
        tracing::info!(limiter = %self.config.name, old, new = limit, "limit changed");
        for w in wakers {
            w.wake();
        }
    }

    /// Rejects queued and future acquires; held permits stay valid and come back as usual.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        if inner.closed {
            return;
        }
        inner.closed = true;
        self.state.fetch_or(CLOSED | SLOW, AcqRel);
        let wakers = inner.waiters.serve_all(WaiterState::Closed);
        self.metrics.queued.decrement(wakers.len() as f64);
        let active = self.active();
        if active == 0 {
            self.drained.notify_waiters();
        }
        drop(inner);
        tracing::info!(limiter = %self.config.name, active, "limiter closed");
        for w in wakers {
            w.wake();
        }
    }

    /// Waits until no permit is held; `Err(held)` when `timeout` passes first.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.drained.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let held = self.active();
            if held == 0 {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(self.active());
            }
        }
    }
}

/// The future of one queued acquire. Dropping it cancels the wait without losing a permit.
#[derive(Debug)]
pub(crate) struct AcquireFuture<'a> {
    engine: &'a Engine,
    level: usize,
    slot: Option<usize>,
}

impl<'a> AcquireFuture<'a> {
    pub(crate) fn new(engine: &'a Engine, level: usize) -> Self {
        AcquireFuture {
            engine,
            level,
            slot: None,
        }
    }
}

impl Future for AcquireFuture<'_> {
    type Output = Result<(), Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.engine.poll_acquire(&mut this.slot, this.level, cx)
    }
}

impl Drop for AcquireFuture<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.engine.cancel(key);
        }
    }
}
