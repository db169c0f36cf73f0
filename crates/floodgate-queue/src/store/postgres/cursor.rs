//! Where the last claim of a queue ended, so the next claim can start there.
//!
//! A claim reads the partial index of runnable rows from its start. Every claimed job leaves a
//! dead entry at that start until vacuum removes it, and while a long transaction anywhere in
//! the database pins the MVCC horizon, vacuum removes nothing: each claim then steps over every
//! job claimed since the pin began, and throughput falls with the length of the pin (measured
//! in `BENCHMARKS.md`: to a fifth of the unpinned rate after 30 s).
//!
//! So a claim that filled its limit leaves a cursor: its queue, kinds, and the last key it took
//! (priority, `run_at`, id). The next claim of the same queue and kinds starts after that key,
//! as an index range, within the same priority — as long as no runnable job of a higher
//! priority exists (checked in the same statement, so priorities stay strict) and the cursor
//! is younger than the rescan interval. A job that appears *behind* the cursor at the same
//! priority (enqueued with an older `run_at`, committed late by a long producer transaction,
//! rescued, or unblocked by its ordering key) is taken by the next full claim, at the latest one
//! rescan interval later. A claim that comes back short runs a full claim for the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::job::Job;

/// The last key a full-limit claim took, and when the last full claim ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cursor {
    pub(super) priority: i16,
    pub(super) run_at: DateTime<Utc>,
    pub(super) id: i64,
    full_at: Instant,
}

/// Cursors per (queue, kinds).
#[derive(Debug)]
pub(super) struct Cursors {
    rescan: Option<Duration>,
    by_claim: Mutex<HashMap<(String, Vec<String>), Cursor>>,
}

impl Cursors {
    /// `rescan`: how long a cursor is used before a full claim; `None` turns cursors off.
    pub(super) fn new(rescan: Option<Duration>) -> Self {
        Cursors {
            rescan,
            by_claim: Mutex::new(HashMap::new()),
        }
    }

    fn key(queue: &str, kinds: &[String]) -> (String, Vec<String>) {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        (queue.to_owned(), kinds)
    }

    /// The cursor to start from, if one is fresh.
    pub(super) fn get(&self, queue: &str, kinds: &[String]) -> Option<Cursor> {
        let rescan = self.rescan?;
        let map = self.by_claim.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(queue, kinds))
            .filter(|c| c.full_at.elapsed() < rescan)
            .copied()
    }

    /// After a full claim: a cursor at its last job if it filled its limit, none otherwise
    /// (the queue has no more runnable jobs to skip ahead to).
    pub(super) fn after_full(&self, queue: &str, kinds: &[String], last: Option<&Job>) {
        if self.rescan.is_none() {
            return;
        }
        let mut map = self.by_claim.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(queue, kinds);
        match last {
            Some(job) => {
                map.insert(
                    key,
                    Cursor {
                        priority: i16::from(job.priority),
                        run_at: job.run_at,
                        id: job.id.0,
                        full_at: Instant::now(),
                    },
                );
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Forgets the cursors of `queue`: jobs went back behind them (held jobs given back), and
    /// the next claim starts from the queue's start.
    pub(super) fn forget(&self, queue: &str) {
        let mut map = self.by_claim.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|(q, _), _| q != queue);
    }

    /// After a claim that started at a cursor and filled its limit: move the cursor forward
    /// (never back, when claimers of one store race), keeping the time of the last full claim.
    pub(super) fn after_fast(&self, queue: &str, kinds: &[String], last: &Job) {
        let mut map = self.by_claim.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cursor) = map.get_mut(&Self::key(queue, kinds))
            && i16::from(last.priority) == cursor.priority
            && (last.run_at, last.id.0) > (cursor.run_at, cursor.id)
        {
            cursor.run_at = last.run_at;
            cursor.id = last.id.0;
        }
    }
}
