//! Queue counts served from a recent sample instead of a count per request.
//!
//! Counting a queue's jobs by state reads an index entry per job: about 60 ms for 1,100,000
//! jobs on SQLite (see `BENCHMARKS.md`), whatever the counts are used for. `GET /v1/queues`
//! (and every dashboard open on it) reads the latest sample instead, at most `max_age` old;
//! an older sample is still answered at once while one refresh runs in the background, so no
//! request waits for the count and many readers cost the database one count per `max_age`.
//! Only the first request, with no sample yet, waits for one. Pausing or resuming a queue
//! drops the sample, so the change shows in the next answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use floodgate_queue::{AnyStore, QueueStats, Store, StoreError};
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
    refreshing: Arc<AsyncMutex<()>>,
}

impl QueueSampler {
    /// A sampler over `store` whose answers are at most `max_age` old (zero: always count).
    pub fn new(store: AnyStore, max_age: Duration) -> Self {
        QueueSampler {
            store,
            max_age,
            latest: Mutex::new(None),
            refreshing: Arc::new(AsyncMutex::new(())),
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

    /// Counts now (one count at a time: a caller arriving during a count gets its result).
    async fn refresh(&self) -> Result<Arc<Sample>, StoreError> {
        let started = Instant::now();
        let _one = self.refreshing.lock().await;
        if let Some(s) = self.latest()
            && s.taken >= started
        {
            return Ok(s);
        }
        let taken = Instant::now();
        let queues = self.store.queue_stats().await?;
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

    /// Drops the sample: the next call counts.
    pub fn invalidate(&self) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
