//! Takeover: the jobs of a worker that died (its leases no longer renewed) run again on
//! another worker about a second after their leases end: the maintenance leader's rescuer
//! passes every second by default and wakes the queue's workers when it puts jobs back.
//! Prints the delays (lease end to restart); the figures are recorded in BENCHMARKS.md, and the
//! bound here only tells a second from the half minute it used to take.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use floodgate_queue::maintenance::Maintenance;
use floodgate_queue::worker::{KindOptions, Outcome, Worker};
use floodgate_queue::{Claim, JobId, NewJob, Singleton, Store};
use serde_json::json;

const JOBS: usize = 5;

/// The rescuer's passes begin `phase` after the dead worker's claim, so the lease ends at
/// another point of the rescuer's second each round: the delays spread over that second.
const PHASES: [f64; 4] = [0.1, 0.35, 0.6, 0.85];

async fn a_dead_workers_jobs_run_again_soon_after_their_leases_end<S>(store: &S)
where
    S: Store + Clone + Send + Sync + 'static,
{
    let mut delays = Vec::new();
    for (round, phase) in PHASES.into_iter().enumerate() {
        delays.extend(one_round(store, &format!("q{round}"), phase).await);
    }
    delays.sort_by(f64::total_cmp);
    let (p50, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    println!(
        "takeover after the lease's end ({} jobs): p50 {p50:.3} s, max {max:.3} s",
        delays.len()
    );
    assert!(
        delays[0] >= 0.0,
        "a job ran again before its lease ended: {delays:?}"
    );
    assert!(
        max < 5.0,
        "the dead worker's jobs waited {max:.3} s past their leases"
    );
}

/// Jobs of `queue` claimed by a worker that dies at once (a 1 s lease, never renewed); a
/// survivor with maintenance starts `phase` seconds later. The delays from each lease's end to
/// the job's new start, in seconds.
async fn one_round<S>(store: &S, queue: &str, phase: f64) -> Vec<f64>
where
    S: Store + Clone + Send + Sync + 'static,
{
    store
        .enqueue_many(
            (0..JOBS)
                .map(|n| NewJob::new("k", json!(n)).queue(queue))
                .collect(),
        )
        .await
        .unwrap();
    let held = store
        .claim(
            &Claim::new("dead", JOBS as u32)
                .queues([queue.to_owned()])
                .lease_ttl(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert_eq!(held.len(), JOBS);
    let ends: HashMap<JobId, DateTime<Utc>> = held
        .iter()
        .map(|j| (j.id, j.lease_expires_at.expect("a running job has a lease")))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(phase)).await;
    let role = Singleton::lease(
        store.clone(),
        "maintenance",
        "survivor",
        Duration::from_secs(30),
    );
    let maintenance = Maintenance::new(store.clone()).start(role);
    let starts: Arc<Mutex<HashMap<JobId, DateTime<Utc>>>> = Arc::default();
    let seen = starts.clone();
    let handle = Worker::builder(store.clone())
        .id("survivor")
        .queues([queue.to_owned()])
        .handler("k", KindOptions::new(), move |job, _| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().entry(job.id).or_insert_with(Utc::now);
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while starts.lock().unwrap().len() < JOBS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {JOBS} jobs ran again",
            starts.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
    maintenance.stop().await;
    let starts = starts.lock().unwrap();
    starts
        .iter()
        .map(|(id, at)| (*at - ends[id]).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
        .collect()
}

crate::support::backends!(a_dead_workers_jobs_run_again_soon_after_their_leases_end);
