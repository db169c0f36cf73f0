//! Matching the rows a batch `INSERT … ON CONFLICT DO NOTHING RETURNING` wrote back to the
//! jobs of the batch, for both backends.
//!
//! `RETURNING` gives the written rows but not which input each came from, and skips the rows
//! whose idempotency key was taken. Both backends insert in input order, so ids rise in input
//! order; an input was written if it has no key, or if it is the first of its (queue, key) in
//! the batch and that key came back. Written inputs take the returned ids in ascending order;
//! the others are looked up by key.

use std::collections::{HashMap, HashSet};

use crate::error::StoreError;
use crate::job::{Enqueued, JobId, NewJob};

/// A (queue, idempotency key) pair.
pub(crate) type Key = (String, String);

/// The first step: which inputs were written and which keys must be looked up.
pub(crate) struct Written {
    ids: Vec<Option<JobId>>,
    missing: Vec<Key>,
}

impl Written {
    /// Matches `rows` (id, queue, idempotency key) returned by the insert to `jobs`.
    pub(crate) fn match_rows(
        jobs: &[NewJob],
        rows: Vec<(i64, String, Option<String>)>,
    ) -> Result<Self, StoreError> {
        let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        let returned_keys: HashSet<Key> = rows
            .into_iter()
            .filter_map(|(_, queue, key)| key.map(|k| (queue, k)))
            .collect();
        let mut seen = HashSet::new();
        let mut next = ids.into_iter();
        let mut missing = Vec::new();
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let written = match &job.idempotency_key {
                None => true,
                Some(key) => {
                    let k = (job.queue.clone(), key.clone());
                    let first = returned_keys.contains(&k) && seen.insert(k.clone());
                    if !first {
                        missing.push(k);
                    }
                    first
                }
            };
            if written {
                let id = next.next().ok_or_else(mismatch)?;
                out.push(Some(JobId(id)));
            } else {
                out.push(None);
            }
        }
        if next.next().is_some() {
            return Err(mismatch());
        }
        Ok(Written { ids: out, missing })
    }

    /// The keys taken by jobs that existed before the batch.
    pub(crate) fn missing(&self) -> &[Key] {
        &self.missing
    }

    /// The results, with the looked-up ids of existing jobs; `None` when one of them was not
    /// found (deleted meanwhile, or invisible to the caller's snapshot).
    pub(crate) fn finish(
        self,
        jobs: &[NewJob],
        existing: &HashMap<Key, JobId>,
    ) -> Option<Vec<Enqueued>> {
        jobs.iter()
            .zip(self.ids)
            .map(|(job, id)| match id {
                Some(id) => Some(Enqueued { id, inserted: true }),
                None => {
                    let key = (job.queue.clone(), job.idempotency_key.clone()?);
                    existing.get(&key).map(|id| Enqueued {
                        id: *id,
                        inserted: false,
                    })
                }
            })
            .collect()
    }
}

fn mismatch() -> StoreError {
    StoreError::Corrupt("batch enqueue returned rows that do not match its input".to_owned())
}

/// The error when a taken key's job cannot be found after retrying.
pub(crate) fn idempotency_invisible(queue: &str) -> StoreError {
    StoreError::invalid(
        "idempotency_key",
        format!(
            "the key is taken in queue {queue:?} by a job this transaction cannot see (a \
             REPEATABLE READ or SERIALIZABLE snapshot older than that job, or a job deleted \
             while enqueueing): retry the transaction"
        ),
    )
}
