//! [`KeyedRateLimiter`]: one GCRA per key, with a bounded key set.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;

use super::allowance::Allowance;
use super::clock::{Clock, RateClock};
use super::error::{NotUntil, RateError};
use super::gcra::{OnCancel, Quota};
use crate::sync::{Mutex, lock};

const SHARDS: usize = 16;

/// A rate limiter per key (GCRA), bounded in the number of keys it remembers.
///
/// Keys often come from outside (client IPs, tenants, API keys), so the key set is bounded:
/// at most `max_keys` keys are kept, in 16 shards, each a least-recently-used map. A key whose
/// bucket is full again (its TAT has passed) carries no information and is the first to be
/// dropped; dropping a busier key forgets its debt, which errs on the permissive side for a key
/// idle enough to be the least recently used. Hostile churn through millions of keys therefore
/// costs a fixed amount of memory.
///
/// Reads the [fast clock](RateClock::Fast) unless built [`with_clock`](Self::with_clock).
///
/// ```
/// use floodgate::rate::{KeyedRateLimiter, Quota};
/// let per_client = KeyedRateLimiter::new(Quota::per_second(1).unwrap(), 10_000).unwrap();
/// assert!(per_client.check(&"10.0.0.1").is_ok());
/// assert!(per_client.check(&"10.0.0.1").is_err());
/// assert!(per_client.check(&"10.0.0.2").is_ok()); // another key, another bucket
/// ```
#[derive(Debug)]
pub struct KeyedRateLimiter<K: Hash + Eq> {
    quota: Quota,
    clock: Clock,
    /// Picks the shard; the same fast keyed hash (foldhash) the shards' maps use.
    hasher: lru::DefaultHasher,
    shards: Box<[Mutex<LruCache<K, u64>>]>,
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// A limiter of `quota` per key, remembering at most `max_keys` keys.
    pub fn new(quota: Quota, max_keys: usize) -> Result<Self, RateError> {
        if max_keys == 0 {
            return Err(RateError::ZeroKeys);
        }
        let per_shard = NonZeroUsize::new(max_keys.div_ceil(SHARDS)).expect("at least 1");
        Ok(KeyedRateLimiter {
            quota,
            clock: Clock::new(RateClock::Fast),
            hasher: lru::DefaultHasher::default(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
        })
    }

    /// The same limiter, with no key remembered, reading `clock` ([`RateClock::Tokio`] in
    /// paused-time tests).
    pub fn with_clock(self, clock: RateClock) -> Self {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
        KeyedRateLimiter {
            clock: Clock::new(clock),
            ..self
        }
    }

    /// The quota of each key.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes one cell for `key`.
    pub fn check(&self, key: &K) -> Result<(), NotUntil> {
        self.check_n(key, 1)
    }

    /// Takes `n` cells for `key`.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), NotUntil> {
        let now = self.clock.now();
        let mut map = lock(self.shard(key));
        match map.get_mut(key) {
            Some(tat) => {
                *tat = self.quota.step(*tat, now, n)?;
                Ok(())
            }
            None => {
                let tat = self.quota.step(0, now, n)?;
                map.push(key.clone(), tat);
                Ok(())
            }
        }
    }

    /// Takes `n` cells for `key`, and says what the key has left: its remaining cells and when
    /// its bucket is full again (for answers that advertise them).
    pub fn take(&self, key: &K, n: u32) -> Result<Allowance, NotUntil> {
        let now = self.clock.now();
        let mut map = lock(self.shard(key));
        let tat = map.get(key).copied().unwrap_or(0);
        let next = self.quota.step(tat, now, n)?;
        map.put(key.clone(), next);
        Ok(Allowance::after(
            &self.quota,
            Duration::from_nanos(next.saturating_sub(now)),
        ))
    }

    /// Waits until `key` has a cell and takes it.
    ///
    /// The cell is reserved at once and the wait is one sleep until it is due (see
    /// [`RateLimiter::until_ready`](super::RateLimiter::until_ready)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a wait that is dropped gives its cell back.
    pub async fn until_ready(&self, key: &K) {
        let now = self.clock.now();
        let (reserved, wait) = {
            let mut map = lock(self.shard(key));
            let tat = map.get(key).copied().unwrap_or(0);
            let Ok((next, wait)) = self.quota.reserve_step(tat, now, 1) else {
                return; // a burst of at least 1 always holds one cell
            };
            map.put(key.clone(), next);
            (next, wait)
        };
        if wait.is_zero() {
            return;
        }
        // Given back only while this reservation is still the key's last (see `gcra.rs`).
        let refund = OnCancel::new(|| {
            if let Some(tat) = lock(self.shard(key)).get_mut(key)
                && *tat == reserved
            {
                *tat = self.quota.refund_step(reserved, 1);
            }
        });
        tokio::time::sleep(wait).await;
        refund.disarm();
    }

    fn shard(&self, key: &K) -> &Mutex<LruCache<K, u64>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key whose bucket is full again (it would behave the same as a new key).
    pub fn forget_idle(&self) {
        let now = self.clock.now();
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            let idle: Vec<K> = map
                .iter()
                .filter(|(_, tat)| **tat <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in idle {
                map.pop(&k);
            }
        }
    }
}
