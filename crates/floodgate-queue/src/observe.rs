//! Metrics and tracing shared by the backends. Every series carries the store's name
//! (`store="…"`, set with the backends' `name` option) so several stores in one process stay
//! apart.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `floodgate_queue_enqueued_total` | counter | store, queue |
//! | `floodgate_queue_duplicates_total` | counter | store, queue (idempotency key already taken) |
//! | `floodgate_queue_claimed_total` | counter | store |
//! | `floodgate_queue_finished_total` | counter | store, outcome (`succeeded`, `failed`, `dead`, `cancelled`, `snoozed`) |
//! | `floodgate_queue_lease_lost_total` | counter | store |
//! | `floodgate_queue_rescued_total` | counter | store |

use std::sync::Arc;

use crate::job::{Enqueued, JobState, NewJob};

/// The label values of one store.
#[derive(Debug, Clone)]
pub(crate) struct Observe {
    name: Arc<str>,
}

impl Observe {
    pub(crate) fn new(name: &str) -> Self {
        Observe { name: name.into() }
    }

    pub(crate) fn enqueued(&self, jobs: &[NewJob], results: &[Enqueued]) {
        // One counter update per (queue, outcome), not per job: a 10,000-job batch would
        // otherwise pay 10,000 registry look-ups.
        let mut counts: Vec<(&str, bool, u64)> = Vec::new();
        for (job, result) in jobs.iter().zip(results) {
            match counts
                .iter_mut()
                .find(|(q, inserted, _)| *q == job.queue && *inserted == result.inserted)
            {
                Some((_, _, n)) => *n += 1,
                None => counts.push((&job.queue, result.inserted, 1)),
            }
        }
        for (queue, inserted, n) in counts {
            let metric = if inserted {
                "floodgate_queue_enqueued_total"
            } else {
                "floodgate_queue_duplicates_total"
            };
            metrics::counter!(metric, "store" => self.name.clone(), "queue" => queue.to_owned())
                .increment(n);
        }
    }

    pub(crate) fn claimed(&self, n: usize) {
        if n > 0 {
            metrics::counter!("floodgate_queue_claimed_total", "store" => self.name.clone())
                .increment(n as u64);
        }
    }

    pub(crate) fn finished(&self, outcome: &'static str, n: usize) {
        if n > 0 {
            metrics::counter!(
                "floodgate_queue_finished_total",
                "store" => self.name.clone(),
                "outcome" => outcome
            )
            .increment(n as u64);
        }
    }

    pub(crate) fn finished_state(&self, state: JobState) {
        self.finished(state.as_str(), 1);
    }

    pub(crate) fn lease_lost(&self, id: crate::JobId, operation: &'static str) {
        tracing::warn!(store = %self.name, job = %id, operation, "lease lost: result not recorded");
        metrics::counter!("floodgate_queue_lease_lost_total", "store" => self.name.clone())
            .increment(1);
    }

    pub(crate) fn rescued(&self, rescued: &[crate::Rescued]) {
        for r in rescued {
            tracing::warn!(
                store = %self.name,
                job = %r.id,
                previous_owner = r.previous_owner.as_deref().unwrap_or("?"),
                state = %r.state,
                "rescued a job whose lease expired"
            );
        }
        if !rescued.is_empty() {
            metrics::counter!("floodgate_queue_rescued_total", "store" => self.name.clone())
                .increment(rescued.len() as u64);
        }
    }

    pub(crate) fn paused(&self, queue: &str, paused: bool) {
        tracing::info!(store = %self.name, queue, paused, "queue pause state changed");
    }
}
