//! The leases this server handed to HTTP workers and that are not yet finished. At shutdown,
//! after the requests in flight have drained, the jobs still held are put back to `pending` at
//! once, so another node or the next start takes them without waiting for the lease to run
//! out. A worker that later reports on such a job gets `409 LEASE_LOST`, as fencing demands.
//!
//! A worker that crashes never reports: its entries are forgotten once their lease has run
//! out (the rescuer takes those jobs back), so the book holds at most the leases alive now.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use floodgate_queue::{AnyStore, JobId, Lease, LeaseToken, Store};

/// Leases held by HTTP workers through this server.
#[derive(Debug, Default)]
pub struct LeaseBook {
    held: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    leases: HashMap<JobId, (LeaseToken, Instant)>,
    /// The book's size after the last prune: the next prune waits until it has doubled.
    pruned_at: usize,
}

impl LeaseBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records leases just claimed, running out after `ttl`.
    pub(crate) fn claimed(&self, leases: impl IntoIterator<Item = Lease>, ttl: Duration) {
        let expires = Instant::now() + ttl;
        let mut book = self.lock();
        for lease in leases {
            book.leases.insert(lease.id, (lease.token, expires));
        }
        // Amortised: an expired entry is dropped within a doubling of the book.
        if book.leases.len() >= 2 * book.pruned_at.max(512) {
            let now = Instant::now();
            book.leases.retain(|_, (_, expires)| *expires > now);
            book.pruned_at = book.leases.len();
        }
    }

    /// Records a heartbeat's new expiry.
    pub(crate) fn extended(&self, lease: Lease, ttl: Duration) {
        if let Some((token, expires)) = self.lock().leases.get_mut(&lease.id)
            && *token == lease.token
        {
            *expires = Instant::now() + ttl;
        }
    }

    /// Forgets a lease whose job was completed, failed or snoozed.
    pub(crate) fn finished(&self, lease: Lease) {
        let mut book = self.lock();
        if book.leases.get(&lease.id).map(|(t, _)| *t) == Some(lease.token) {
            book.leases.remove(&lease.id);
        }
    }

    /// Leases held now.
    pub fn len(&self) -> usize {
        self.lock().leases.len()
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
            .leases
            .drain()
            .map(|(id, (token, _))| Lease { id, token })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64) -> Lease {
        Lease {
            id: JobId(id),
            token: LeaseToken(id * 10),
        }
    }

    #[test]
    fn expired_leases_of_crashed_workers_are_forgotten() {
        let book = LeaseBook::default();
        book.claimed((0..600).map(lease), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        book.claimed((1_000..1_500).map(lease), Duration::from_secs(60));
        assert_eq!(book.len(), 500, "the 600 expired ones were dropped");
        book.extended(lease(1_000), Duration::from_secs(120));
        book.finished(lease(1_001));
        book.finished(Lease {
            id: JobId(1_002),
            token: LeaseToken(7),
        });
        assert_eq!(book.len(), 499, "a stale token forgets nothing");
    }
}
