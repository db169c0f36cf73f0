//! The background watches: the heartbeat that extends every running job's lease, and the
//! memory watch that stops claims above a high-water mark.

use super::*;

/// Extends the leases of everything running every third of the lease.
pub(super) async fn heartbeat<S: Store + Clone>(config: Arc<Config<S>>, shared: Arc<Shared>) {
    let every = config.lease_ttl / 3;
    loop {
        tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // Jobs claimed ahead hold leases too. They are read first: a job that starts between
        // the two reads is then in both lists (extended twice) rather than in neither.
        let buffered = shared.held_leases();
        let mut leases: Vec<Lease> = lock(&shared.running)
            .values()
            .filter(|r| !r.lost)
            .map(|r| r.lease)
            .collect();
        leases.extend(buffered);
        if leases.is_empty() {
            continue;
        }
        let statuses = match config
            .store
            .extend_leases(&config.id, &leases, config.lease_ttl)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                shared.emit(WorkerEvent::StoreError {
                    error: format!("heartbeat: {e}"),
                });
                continue;
            }
        };
        // (A held job whose lease is lost, or that was cancelled, stays in the buffer: starting
        // it or giving it back finds out which, and counts it.)
        let mut running = lock(&shared.running);
        for (lease, status) in leases.iter().zip(statuses) {
            // (By token too: a held job given back and claimed again runs under a new one.)
            let Some(r) = running.get_mut(&lease.id).filter(|r| r.lease == *lease) else {
                continue;
            };
            match status {
                LeaseStatus::Extended => {}
                LeaseStatus::CancelRequested => r.stop.cancel(),
                // (The outcome being written took the lease: nothing was lost.)
                LeaseStatus::Lost if r.finishing => {}
                LeaseStatus::Lost => {
                    r.lost = true;
                    r.stop.cancel();
                    tracing::warn!(worker = %config.id, job = %lease.id, "lease lost");
                    shared.emit(WorkerEvent::LeaseLost {
                        id: lease.id,
                        kind: r.kind.to_string(),
                    });
                }
            }
        }
    }
}

pub(super) async fn watch_memory(watch: MemoryWatch, id: Arc<str>, shared: Arc<Shared>) {
    let gauge = metrics::gauge!("floodgate_worker_memory_high", "worker" => id.to_string());
    loop {
        tokio::select! {
            _ = shared.background_stop.cancelled() => return,
            _ = tokio::time::sleep(watch.every) => {}
        }
        let Some(rss) = resident_bytes() else { return };
        let high = shared.memory_high.load(Ordering::Relaxed);
        if !high && rss > watch.high {
            shared.memory_high.store(true, Ordering::Relaxed);
            gauge.set(1.0);
            tracing::warn!(worker = %id, rss, "memory above the high-water mark: claiming paused");
            shared.emit(WorkerEvent::MemoryHigh { rss });
        } else if high && rss < watch.low {
            shared.memory_high.store(false, Ordering::Relaxed);
            gauge.set(0.0);
            tracing::info!(worker = %id, rss, "memory below the low-water mark: claiming resumed");
            shared.emit(WorkerEvent::MemoryNormal { rss });
            shared.freed.notify_one();
        }
    }
}
