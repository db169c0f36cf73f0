//! Queue counts served from a recent sample instead of a count per request.
//!
//! Counting a queue's jobs by state reads an index entry per job: about 60 ms for 1,100,000
//! jobs on SQLite (see `BENCHMARKS.md`), whatever the counts are used for. `GET /v1/queues`
//! (and every dashboard open on it) reads the latest sample instead, at most `max_age` old;
//! an older sample is still answered at once while one refresh runs in the background, so no
//! request waits for the count and many readers cost the database one count per `max_age`.
//! Only the first request, with no sample yet, waits for one. Pausing or resuming a queue
//! drops the sample, so the change shows in the next answer.
//!
//! A refresh does not count the whole history either: it counts the unfinished jobs and the
//! jobs finished since the previous refresh (`Store::queue_activity`), adds those finished
//! more than [`SETTLE`] ago to the finished counts it holds and shows the last two seconds'
//! on top (counted again next time, so a late commit is not lost); a full count replaces them once a minute (and
//! after an operator retries or cancels jobs), so finished jobs that were deleted by
//! retention, or committed late, are right again within a minute. Over 1,000,000 finished and
//! 100,000 pending jobs a refresh reads the 100,000, not the 1,100,000 (`BENCHMARKS.md`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use floodgate_queue::{AnyStore, JobState, QueueStats, Store, StoreError};
use tokio::sync::Mutex as AsyncMutex;

/// A sample of every queue's counts.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The queues.
    pub queues: Vec<QueueStats>,
    /// When it was taken.
    pub taken_at: SystemTime,
    taken: Instant,
}

/// The latest sample and the one refresh allowed at a time.
#[derive(Debug)]
pub struct QueueSampler {
    store: AnyStore,
    max_age: Duration,
    latest: Mutex<Option<Arc<Sample>>>,
    refreshing: Arc<AsyncMutex<Option<Finished>>>,
    stale: std::sync::atomic::AtomicBool,
}

/// How long a finished job counts as settling: a finishing transaction commits a little after
/// its `finished_at`, so the jobs finished this recently are counted again at each refresh
/// and join the running totals only once they are older.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How often the finished counts are counted in full.
pub const FULL_COUNT_EVERY: Duration = Duration::from_secs(60);

/// The finished counts a refresh adds to.
#[derive(Debug)]
struct Finished {
    /// Per queue: succeeded, dead, cancelled.
    counts: BTreeMap<String, [u64; 3]>,
    /// Jobs finished from then on are not in `counts` yet.
    since: DateTime<Utc>,
    full_at: Instant,
}

const FINISHED: [JobState; 3] = [JobState::Succeeded, JobState::Dead, JobState::Cancelled];

fn finished_of(q: &QueueStats) -> [u64; 3] {
    FINISHED.map(|s| q.counts.get(s))
}

impl QueueSampler {
    /// A sampler over `store` whose answers are at most `max_age` old (zero: always count).
    pub fn new(store: AnyStore, max_age: Duration) -> Self {
        QueueSampler {
            store,
            max_age,
            latest: Mutex::new(None),
            refreshing: Arc::new(AsyncMutex::new(None)),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn latest(&self) -> Option<Arc<Sample>> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The latest sample: counted now if there is none (or `max_age` is zero), otherwise the
    /// one at hand, refreshed in the background when older than `max_age`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call leaves the sample as it was (a refresh it started goes on).
    pub async fn sample(self: &Arc<Self>) -> Result<Arc<Sample>, StoreError> {
        match self.latest() {
            Some(s) if !self.max_age.is_zero() => {
                if s.taken.elapsed() > self.max_age {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.refresh().await {
                            tracing::warn!(error = %e, "queue counts not refreshed");
                        }
                    });
                }
                Ok(s)
            }
            _ => self.refresh().await,
        }
    }

    /// Counts now (one count at a time: a caller arriving during a count gets its result);
    /// the dashboard's sampler calls it once a second, so its overview is never a tick behind.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped count leaves the previous sample.
    pub async fn refresh(&self) -> Result<Arc<Sample>, StoreError> {
        let started = Instant::now();
        let mut finished = self.refreshing.lock().await;
        if let Some(s) = self.latest()
            && s.taken >= started
        {
            return Ok(s);
        }
        let taken = Instant::now();
        let stale = self.stale.load(std::sync::atomic::Ordering::Relaxed);
        let full = stale
            || finished
                .as_ref()
                .is_none_or(|f| f.full_at.elapsed() >= FULL_COUNT_EVERY);
        if full {
            *finished = None;
        }
        // Every finished job has its `finished_at`: counting from the epoch is the full count.
        let since = finished.as_ref().map_or(DateTime::UNIX_EPOCH, |f| f.since);
        let activity = self.store.queue_activity(since, SETTLE).await?;
        if full {
            // Cleared only once the full count is in: a failed or dropped one leaves it set.
            self.stale
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let held = finished.get_or_insert_with(|| Finished {
            counts: BTreeMap::new(),
            since,
            full_at: taken,
        });
        held.since = activity.settled_until;
        let mut queues: BTreeMap<String, QueueStats> = activity
            .queues
            .into_iter()
            .map(|q| (q.queue.clone(), q))
            .collect();
        // The settled finished jobs join the totals once; the settling ones show on top.
        for (queue, settled) in queues.iter().map(|(k, q)| (k.clone(), finished_of(q))) {
            let total = held.counts.entry(queue).or_default();
            for (t, n) in total.iter_mut().zip(settled) {
                *t += n;
            }
        }
        let recent: BTreeMap<String, [u64; 3]> = activity
            .recent
            .iter()
            .map(|q| (q.queue.clone(), finished_of(q)))
            .collect();
        let named: std::collections::BTreeSet<&String> =
            held.counts.keys().chain(recent.keys()).collect();
        for queue in named {
            let total = held.counts.get(queue).copied().unwrap_or_default();
            let settling = recent.get(queue).copied().unwrap_or_default();
            let q = queues
                .entry(queue.clone())
                .or_insert_with(|| QueueStats::empty(queue.clone()));
            for ((state, n), r) in FINISHED.into_iter().zip(total).zip(settling) {
                q.counts.set(state, n + r);
            }
        }
        let queues: Vec<QueueStats> = queues.into_values().collect();
        metrics::histogram!("floodgate_server_queue_count_seconds")
            .record(taken.elapsed().as_secs_f64());
        let sample = Arc::new(Sample {
            queues,
            taken_at: SystemTime::now(),
            taken,
        });
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(sample.clone());
        Ok(sample)
    }

    /// Drops the sample: the next call counts, in full (after pausing a queue, or retrying or
    /// cancelling jobs, which move jobs out of finished states).
    pub fn invalidate(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Relaxed);
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
