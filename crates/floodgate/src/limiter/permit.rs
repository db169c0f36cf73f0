//! Permits: RAII guards that give their slot back when dropped, and leases that expire.

use std::sync::atomic::{AtomicU8, Ordering::AcqRel};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Limiter;

const HELD: u8 = 0;
const RELEASED: u8 = 1;
const EXPIRED: u8 = 2;

/// A permit borrowed from a [`Limiter`]; the slot is returned when the permit is dropped,
/// including while unwinding from a panic and when the holding future is cancelled.
#[must_use = "the permit is released as soon as it is dropped"]
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a Limiter,
}

impl<'a> Permit<'a> {
    pub(crate) fn new(limiter: &'a Limiter) -> Self {
        Permit { limiter }
    }

    /// The limiter this permit belongs to.
    pub fn limiter(&self) -> &Limiter {
        self.limiter
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.engine.release();
    }
}

/// A permit that owns a handle to its [`Limiter`], so it can move into spawned tasks; it may
/// carry a lease (see [`Limiter::acquire_leased`]).
#[must_use = "the permit is released as soon as it is dropped"]
#[derive(Debug)]
pub struct OwnedPermit {
    limiter: Limiter,
    lease: Option<Lease>,
}

impl OwnedPermit {
    pub(crate) fn new(limiter: Limiter) -> Self {
        OwnedPermit {
            limiter,
            lease: None,
        }
    }

    pub(crate) fn leased(limiter: Limiter, ttl: Duration) -> Self {
        let state = std::sync::Arc::new(AtomicU8::new(HELD));
        let reclaimer = {
            let limiter = limiter.clone();
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ttl).await;
                if state
                    .compare_exchange(HELD, EXPIRED, AcqRel, std::sync::atomic::Ordering::Acquire)
                    .is_ok()
                {
                    limiter.engine.reclaim_expired(ttl);
                }
            })
        };
        OwnedPermit {
            limiter,
            lease: Some(Lease { state, reclaimer }),
        }
    }

    /// The limiter this permit belongs to.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Whether the lease ran out and the limiter took the slot back. Work still running under
    /// an expired permit is no longer counted against the limit; the holder should wrap up.
    /// Always `false` for a permit without a lease.
    pub fn is_expired(&self) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.state.load(std::sync::atomic::Ordering::Acquire) == EXPIRED)
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        match self.lease.take() {
            None => self.limiter.engine.release(),
            Some(lease) => {
                lease.reclaimer.abort();
                if lease
                    .state
                    .compare_exchange(HELD, RELEASED, AcqRel, std::sync::atomic::Ordering::Acquire)
                    .is_ok()
                {
                    self.limiter.engine.release();
                }
            }
        }
    }
}

#[derive(Debug)]
struct Lease {
    state: std::sync::Arc<AtomicU8>,
    reclaimer: JoinHandle<()>,
}
