//! [`FleetQueue`]: one server's waiters for a fleet-wide limiter, in priority order (highest
//! first, first come first served within a level). Only the waiter at the head asks Redis
//! for a slot; when a more urgent waiter arrives it becomes the head at once, and the one it
//! displaced waits again in its place. So within one server permits go strictly by priority
//! once the fleet is full, and the server then sends Redis one request at a time however many
//! callers wait. While the last ask found a free slot, every waiter asks at once (there is no
//! one to pass: slots are free), so a burst is served at Redis's pace, not one by one.
//!
//! A caller whose wait is over before its turn came (a `wait` of 0 behind others, say) still
//! asks when its turn comes, unless the last ask found the fleet full: then it gives up at
//! once, as it could only have waited for a permit to come back.
//!
//! ```
//! use floodgate_server::limits::fleet_queue::FleetQueue;
//!
//! let queue = FleetQueue::new(100);
//! assert_eq!(queue.len(), 0);
//! ```

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use floodgate::rate::RateError;
use floodgate::rate::redis::{GlobalLimiter, GlobalPermit};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::LimitError;

type Ticket = (Reverse<u8>, u64);

/// The waiters of one server for one fleet-wide limiter; see the [module docs](self).
pub struct FleetQueue {
    waiting: Mutex<BTreeSet<Ticket>>,
    /// Woken when the head may have changed, or a slot may have been freed here.
    changed: Notify,
    next: AtomicU64,
    max: usize,
    /// Whether the head's last ask found every slot taken.
    full: AtomicBool,
    refused: AtomicU64,
}

/// Takes a waiter out of the queue however its wait ends (cancellation included).
struct InLine<'a> {
    queue: &'a FleetQueue,
    ticket: Ticket,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.queue.lock().remove(&self.ticket);
        self.queue.changed.notify_waiters();
    }
}

impl FleetQueue {
    /// A queue of at most `max` waiters.
    pub fn new(max: usize) -> FleetQueue {
        FleetQueue {
            waiting: Mutex::new(BTreeSet::new()),
            changed: Notify::new(),
            next: AtomicU64::new(0),
            max,
            full: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Ticket>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waiters now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Callers refused because the queue was full, since start.
    pub fn refused_full(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// A slot may have been freed on this server: the head asks again now.
    pub fn freed(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `deadline` for a slot of `global`, at `priority`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait leaves the queue at once. A Redis command in flight when it
    /// is dropped may hold a slot nobody owns until its lease's TTL.
    pub async fn acquire(
        &self,
        global: &GlobalLimiter,
        priority: u8,
        deadline: Instant,
        waited: f64,
    ) -> Result<GlobalPermit, LimitError> {
        let ticket = (Reverse(priority), self.next.fetch_add(1, Relaxed));
        {
            let mut waiting = self.lock();
            // The bound is on callers who wait: while the last ask found room, none does.
            if self.full.load(Relaxed) && waiting.len() >= self.max {
                self.refused.fetch_add(1, Relaxed);
                return Err(LimitError::QueueFull(self.max));
            }
            waiting.insert(ticket);
        }
        let _in_line = InLine {
            queue: self,
            ticket,
        };
        self.changed.notify_waiters();
        let mut pause = Duration::from_millis(2);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let head = self.lock().first() == Some(&ticket);
            if head || !self.full.load(Relaxed) {
                match global.try_acquire().await {
                    Ok(Some(permit)) => {
                        // The others may all ask at once only while slots are left.
                        self.full.store(global.last_free() == 0, Relaxed);
                        return Ok(permit);
                    }
                    Ok(None) => {
                        // Those whose wait is over give up now (see the module docs).
                        if !self.full.swap(true, Relaxed) {
                            self.changed.notify_waiters();
                        }
                    }
                    Err(RateError::Unavailable { reason }) => {
                        // Every waiter asks at once and hears the same, rather than one by one.
                        if self.full.swap(false, Relaxed) {
                            self.changed.notify_waiters();
                        }
                        return Err(LimitError::LimiterUnavailable(reason));
                    }
                    Err(e) => return Err(LimitError::LimiterUnavailable(e.to_string())),
                }
            }
            let over = Instant::now() >= deadline;
            if over && (head || self.full.load(Relaxed)) {
                return Err(LimitError::AcquireTimeout(waited));
            }
            // The head retries with a growing pause (a slot freed on another server is only
            // seen by asking), at once when a slot is freed here; the others when the head
            // changes.
            let wake = if head {
                let at = (Instant::now() + pause).min(deadline);
                pause = (pause * 2).min(Duration::from_millis(50));
                at
            } else if over {
                // Its turn to ask, or the news that the fleet is full, wakes it.
                Instant::now() + Duration::from_secs(3_600)
            } else {
                deadline
            };
            tokio::select! {
                () = changed => pause = Duration::from_millis(2),
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
