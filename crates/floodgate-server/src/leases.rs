//! The leases this server handed to HTTP workers and that are not yet finished. At shutdown,
//! after the requests in flight have drained, the jobs still held are put back to `pending` at
//! once, so another node or the next start takes them without waiting for the lease to run
//! out. A worker that later reports on such a job gets `409 LEASE_LOST`, as fencing demands.

use std::collections::HashMap;
use std::sync::Mutex;

use floodgate_queue::{AnyStore, JobId, Lease, LeaseToken, Store};

/// Leases held by HTTP workers through this server.
#[derive(Debug, Default)]
pub struct LeaseBook {
    held: Mutex<HashMap<JobId, LeaseToken>>,
}

impl LeaseBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, LeaseToken>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records leases just claimed.
    pub(crate) fn claimed(&self, leases: impl IntoIterator<Item = Lease>) {
        let mut held = self.lock();
        for lease in leases {
            held.insert(lease.id, lease.token);
        }
    }

    /// Forgets a lease whose job was completed, failed or snoozed.
    pub(crate) fn finished(&self, lease: Lease) {
        let mut held = self.lock();
        if held.get(&lease.id) == Some(&lease.token) {
            held.remove(&lease.id);
        }
    }

    /// Leases held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts every job still held back to `pending` now; returns how many were released.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped future may leave some leases unreleased (they then expire
    /// and the rescuer takes them back).
    pub async fn release_all(&self, store: &AnyStore) -> usize {
        let held: Vec<Lease> = self
            .lock()
            .drain()
            .map(|(id, token)| Lease { id, token })
            .collect();
        let mut released = 0;
        for lease in held {
            match store.snooze(lease, chrono::Utc::now()).await {
                Ok(()) => released += 1,
                Err(e) if e.is_lease_lost() => {}
                Err(e) => tracing::warn!(job = %lease.id, error = %e, "could not release a lease"),
            }
        }
        released
    }
}
