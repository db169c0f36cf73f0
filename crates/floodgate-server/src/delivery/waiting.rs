//! Destinations whose jobs wait unclaimed: those whose breaker is open (until the breaker's
//! wait ends) and those disabled (by a `410 Gone`, until re-enabled).
//!
//! The delivery worker asks [`Waiting::open_breakers`] before each claim and leaves those
//! destinations' jobs pending (no attempt spent, no claim round trip) while other
//! destinations keep flowing; a breaker's entry lapses when its open wait ends, so the next
//! claim takes a job again and its delivery is the breaker's probe. Disabled destinations are
//! paused groups in the store (shared by every node and kept across restarts), which the
//! worker runtime skips by itself; this keeps a copy for the engine's own check.
//!
//! ```
//! use std::time::Duration;
//! use floodgate_server::delivery::waiting::Waiting;
//!
//! let waiting = Waiting::default();
//! waiting.breaker_open("hooks.example.com", Duration::from_secs(30));
//! assert_eq!(waiting.open_breakers(), ["hooks.example.com"]);
//! waiting.breaker_closed("hooks.example.com");
//! assert!(waiting.open_breakers().is_empty());
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many open breakers are remembered (as many as destinations are kept).
const MAX_ENTRIES: usize = 10_000;

/// Open breakers until their wait ends, and disabled destinations.
#[derive(Debug, Default)]
pub struct Waiting {
    open_until: Mutex<HashMap<String, Instant>>,
    disabled: Mutex<HashSet<String>>,
}

impl Waiting {
    /// `destination`'s breaker is open for `wait` more.
    pub fn breaker_open(&self, destination: &str, wait: Duration) {
        let mut open = lock(&self.open_until);
        if open.len() >= MAX_ENTRIES && !open.contains_key(destination) {
            let now = Instant::now();
            open.retain(|_, until| *until > now);
            if open.len() >= MAX_ENTRIES {
                return; // the engine's own breaker check still snoozes its jobs
            }
        }
        open.insert(destination.to_owned(), Instant::now() + wait);
    }

    /// `destination`'s breaker let a call through and it succeeded.
    pub fn breaker_closed(&self, destination: &str) {
        lock(&self.open_until).remove(destination);
    }

    /// The destinations whose breaker is open now (lapsed entries are dropped).
    pub fn open_breakers(&self) -> Vec<String> {
        let mut open = lock(&self.open_until);
        if open.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        open.retain(|_, until| *until > now);
        open.keys().cloned().collect()
    }

    /// Marks `destination` disabled (or not).
    pub fn set_disabled(&self, destination: &str, disabled: bool) -> bool {
        let mut set = lock(&self.disabled);
        if disabled {
            set.insert(destination.to_owned())
        } else {
            set.remove(destination)
        }
    }

    /// Replaces the disabled set (with what the store holds).
    pub fn replace_disabled(&self, destinations: impl IntoIterator<Item = String>) {
        *lock(&self.disabled) = destinations.into_iter().collect();
    }

    /// The destinations disabled, as far as this process knows.
    pub fn disabled(&self) -> Vec<String> {
        lock(&self.disabled).iter().cloned().collect()
    }

    /// Whether `destination` is disabled, as far as this process knows.
    pub fn is_disabled(&self, destination: &str) -> bool {
        lock(&self.disabled).contains(destination)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_breaker_lapses_when_its_wait_ends() {
        let w = Waiting::default();
        w.breaker_open("a", Duration::from_millis(30));
        w.breaker_open("b", Duration::from_secs(60));
        let mut open = w.open_breakers();
        open.sort();
        assert_eq!(open, ["a", "b"]);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(w.open_breakers(), ["b"]);
    }

    #[test]
    fn the_set_is_bounded() {
        let w = Waiting::default();
        for i in 0..MAX_ENTRIES + 10 {
            w.breaker_open(&format!("h{i}"), Duration::from_secs(60));
        }
        assert_eq!(w.open_breakers().len(), MAX_ENTRIES);
    }

    #[test]
    fn disabled_destinations_are_kept_until_enabled() {
        let w = Waiting::default();
        assert!(w.set_disabled("gone", true));
        assert!(w.is_disabled("gone"));
        w.replace_disabled(["other".to_owned()]);
        assert!(!w.is_disabled("gone") && w.is_disabled("other"));
        assert!(w.set_disabled("other", false));
        assert!(!w.is_disabled("other"));
    }
}
