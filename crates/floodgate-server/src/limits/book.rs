//! [`Book`]: things handed to HTTP callers by id until a deadline (permits, breaker calls):
//! taken back by the caller, or expired by a reaper when the deadline passes. An id that
//! ended is remembered for a while, so a late caller learns whether its thing was finished or
//! expired (`409`) rather than unknown (`404`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use floodgate_server::limits::book::{Book, Gone};
//! use tokio::time::Instant;
//!
//! let book = Book::new();
//! let id = book.insert("a permit", Instant::now() + Duration::from_secs(1));
//! let (expired, _next) = book.expire_due(Instant::now() + Duration::from_secs(2));
//! assert_eq!(expired, vec!["a permit"]);
//! assert_eq!(book.take(&id, |_| true).unwrap_err(), Gone::Expired);
//! # }
//! ```

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest pause between two passes of the reaper.
pub const REAP_EVERY: Duration = Duration::from_millis(50);

/// Ended ids remembered (about 40 bytes each).
const REMEMBERED: usize = 65_536;

/// Why an id is no longer in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// No such id (never given, or ended long ago).
    Unknown,
    /// Taken back by its caller.
    Finished,
    /// Its deadline passed first: the reaper took it back.
    Expired,
}

struct Entry<T> {
    value: T,
    deadline: Instant,
}

struct State<T> {
    live: HashMap<String, Entry<T>>,
    ended: LruCache<String, Gone>,
    /// When the reaper wakes next: an earlier deadline wakes it (a later one need not).
    planned: Option<Instant>,
}

/// Values by id until a deadline; see the [module docs](self).
pub struct Book<T> {
    state: Mutex<State<T>>,
    /// Woken when a deadline may have come earlier than the reaper's next wake-up.
    changed: Notify,
}

impl<T> Default for Book<T> {
    fn default() -> Self {
        Book::new()
    }
}

impl<T> Book<T> {
    /// An empty book.
    pub fn new() -> Book<T> {
        Book {
            state: Mutex::new(State {
                live: HashMap::new(),
                ended: LruCache::new(NonZeroUsize::new(REMEMBERED).expect("not zero")),
                planned: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every change is one map operation: a panic cannot leave a half-done one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `value` until `deadline` under a new random id, which it returns.
    pub fn insert(&self, value: T, deadline: Instant) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut state = self.lock();
        state.live.insert(id.clone(), Entry { value, deadline });
        self.wake_for(&mut state, deadline);
        id
    }

    /// Wakes the reaper if `deadline` comes before its planned wake-up.
    fn wake_for(&self, state: &mut State<T>, deadline: Instant) {
        if state.planned.is_none_or(|p| deadline < p) {
            state.planned = Some(deadline);
            self.changed.notify_one();
        }
    }

    /// Moves the deadline of `id` to what `deadline_for` says for its value, if it is live and
    /// `deadline_for` gives one (`None`: not its owner; an id asked for through the wrong name
    /// is unknown there). The new deadline.
    pub fn extend(
        &self,
        id: &str,
        deadline_for: impl FnOnce(&T) -> Option<Instant>,
    ) -> Result<Instant, Gone> {
        let mut state = self.lock();
        let Some(entry) = state.live.get_mut(id) else {
            return Err(state.ended.get(id).copied().unwrap_or(Gone::Unknown));
        };
        let deadline = deadline_for(&entry.value).ok_or(Gone::Unknown)?;
        entry.deadline = deadline;
        self.wake_for(&mut state, deadline);
        Ok(deadline)
    }

    /// Takes out `id` as expired if `lost` says its value no longer holds; whether it did.
    pub fn expire_if(&self, id: &str, lost: impl FnOnce(&T) -> bool) -> bool {
        let mut state = self.lock();
        if !state.live.get(id).is_some_and(|e| lost(&e.value)) {
            return false;
        }
        state.live.remove(id);
        state.ended.put(id.to_owned(), Gone::Expired);
        true
    }

    /// Takes `id` back for its caller, if it is live and `owns` accepts its value.
    pub fn take(&self, id: &str, owns: impl FnOnce(&T) -> bool) -> Result<T, Gone> {
        let mut state = self.lock();
        match state.live.get(id) {
            Some(entry) if owns(&entry.value) => {
                let entry = state.live.remove(id).expect("present");
                state.ended.put(id.to_owned(), Gone::Finished);
                Ok(entry.value)
            }
            Some(_) => Err(Gone::Unknown),
            None => Err(state.ended.get(id).copied().unwrap_or(Gone::Unknown)),
        }
    }

    /// Takes out every value whose deadline is at or before `now`, and says when the next
    /// deadline is.
    pub fn expire_due(&self, now: Instant) -> (Vec<T>, Option<Instant>) {
        let mut state = self.lock();
        let due: Vec<String> = state
            .live
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            if let Some(entry) = state.live.remove(&id) {
                expired.push(entry.value);
                state.ended.put(id, Gone::Expired);
            }
        }
        let next = state.live.values().map(|e| e.deadline).min();
        state.planned = next;
        (expired, next)
    }

    /// Takes out every live value (at shutdown).
    pub fn drain(&self) -> Vec<T> {
        let mut state = self.lock();
        let live = std::mem::take(&mut state.live);
        for id in live.keys() {
            state.ended.put(id.clone(), Gone::Finished);
        }
        live.into_values().map(|e| e.value).collect()
    }

    /// Live values counted by `key` (for stats).
    pub fn count_by<K: std::hash::Hash + Eq>(&self, key: impl Fn(&T) -> K) -> HashMap<K, usize> {
        let mut counts = HashMap::new();
        for entry in self.lock().live.values() {
            *counts.entry(key(&entry.value)).or_insert(0) += 1;
        }
        counts
    }

    /// Expires values as their deadlines pass (within [`REAP_EVERY`] of them: expiries close
    /// together are taken in one pass over the book), handing each to `expired`, until `stop`.
    pub async fn reap(&self, mut expired: impl FnMut(T), stop: CancellationToken) {
        loop {
            let changed = self.changed.notified();
            let now = Instant::now();
            let (due, next) = self.expire_due(now);
            due.into_iter().for_each(&mut expired);
            // With nothing live, sleep until something is inserted (a long sleep, re-checked).
            let wake = next
                .unwrap_or(now + Duration::from_secs(3_600))
                .max(now + REAP_EVERY);
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
