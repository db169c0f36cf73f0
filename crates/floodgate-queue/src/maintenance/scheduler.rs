//! The scheduler: enqueues each occurrence of periodic jobs, with an idempotency key made of
//! the schedule's name and the occurrence's time, so two leaders (or a restarted one) never
//! enqueue an occurrence twice. On taking the role it enqueues the occurrences of the last
//! `catch_up` it may have missed, so a failover leaves no gap.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::job::NewJob;
use crate::store::Store;

/// A job enqueued on a cron schedule.
///
/// ```
/// use floodgate_queue::maintenance::Periodic;
/// use floodgate_queue::NewJob;
/// use serde_json::json;
///
/// // sec min hour day-of-month month day-of-week
/// let nightly = Periodic::new("nightly_report", "0 0 3 * * *", NewJob::new("report", json!({})))?;
/// # Ok::<(), floodgate_queue::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Periodic {
    pub(super) name: String,
    schedule: cron::Schedule,
    job: NewJob,
}

impl Periodic {
    /// `job` on the cron schedule `expression` (6 or 7 fields, seconds first, UTC).
    pub fn new(name: impl Into<String>, expression: &str, job: NewJob) -> Result<Self, StoreError> {
        let name = name.into();
        crate::job::validate_name("name", &name)?;
        let schedule = cron::Schedule::from_str(expression).map_err(|e| {
            StoreError::invalid(
                "schedule",
                format!(
                    "{expression:?} is not a cron expression (sec min hour dom month dow): {e}"
                ),
            )
        })?;
        Ok(Periodic {
            name,
            schedule,
            job,
        })
    }

    /// The occurrence's job: the template with `run_at` and the idempotency key set.
    fn occurrence(&self, at: DateTime<Utc>) -> NewJob {
        self.job.clone().run_at(at).idempotency_key(format!(
            "periodic:{}:{}",
            self.name,
            at.timestamp()
        ))
    }

    /// Occurrences in `(from, to]`, at most `max`, latest last.
    fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
        let mut all: Vec<_> = self
            .schedule
            .after(&from)
            .take_while(|t| *t <= to)
            .take(100_000)
            .collect();
        let skip = all.len().saturating_sub(max);
        all.drain(..skip);
        all
    }

    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t).next()
    }
}

/// Enqueues occurrences until `term` ends.
pub(super) async fn run<S: Store>(
    store: S,
    periodic: Vec<Periodic>,
    catch_up: Duration,
    term: CancellationToken,
) {
    if periodic.is_empty() {
        return;
    }
    let catch_up = chrono::Duration::from_std(catch_up).unwrap_or(chrono::Duration::zero());
    // Up to now: what a previous leader may have missed (keys make repeats harmless).
    let mut done_until = Utc::now() - catch_up;
    loop {
        let now = Utc::now();
        let due: Vec<NewJob> = periodic
            .iter()
            .flat_map(|p| {
                p.between(done_until, now, 1_000)
                    .into_iter()
                    .map(|t| p.occurrence(t))
            })
            .collect();
        if !due.is_empty() {
            match store.enqueue_many(due).await {
                Ok(out) => {
                    let new = out.iter().filter(|e| e.inserted).count();
                    if new > 0 {
                        tracing::info!(enqueued = new, "scheduler: enqueued periodic jobs");
                    }
                    done_until = now;
                }
                Err(e) => tracing::warn!(error = %e, "scheduler: could not enqueue; retrying"),
            }
        } else {
            done_until = now;
        }
        let next = periodic
            .iter()
            .filter_map(|p| p.next_after(now))
            .min()
            .map_or(Duration::from_secs(60), |t| {
                (t - Utc::now()).to_std().unwrap_or_default()
            })
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = term.cancelled() => return,
            // A few ms past the occurrence, so it is `<= now` when we wake.
            _ = tokio::time::sleep(next + Duration::from_millis(5)) => {}
        }
    }
}
