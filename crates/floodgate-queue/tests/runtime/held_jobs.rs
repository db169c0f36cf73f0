//! The promises claiming ahead must keep when quick and slow jobs share a queue, on both
//! backends: a held job (claimed ahead, not started) whose cancel returned never starts; an
//! urgent job overtakes the jobs a worker merely holds; two workers share a tail of slow jobs.
//!
//! The scenario they share: a batch of no-op `fast` jobs gets the worker claiming ahead in
//! hundreds, then `slow` jobs wait at the batch's tail, so the worker's buffer fills with slow
//! jobs just before the start rate falls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodgate_queue::worker::{KindOptions, Outcome, Worker, WorkerBuilder};
use floodgate_queue::{JobId, JobState, NewJob, Store};
use serde_json::json;
use tokio::sync::Notify;

const FAST: usize = 2_000;

/// Enqueues `FAST` no-op jobs, then `slow` slow jobs; the slow ones' ids.
async fn enqueue_fast_then_slow<S: Store>(store: &S, slow: usize) -> Vec<JobId> {
    store
        .enqueue_many((0..FAST).map(|n| NewJob::new("fast", json!(n))).collect())
        .await
        .unwrap();
    store
        .enqueue_many((0..slow).map(|n| NewJob::new("slow", json!(n))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// When each slow job's handler started, and in which worker, by id.
type Starts = Arc<Mutex<HashMap<JobId, (Instant, String)>>>;

/// A worker of `concurrency` permits whose `slow` jobs take `slow_for`; records every slow
/// start in `starts` and wakes `first_slow` at the first.
fn worker<S: Store + Clone>(
    store: &S,
    concurrency: usize,
    slow_for: Duration,
    starts: &Starts,
    first_slow: &Arc<Notify>,
) -> WorkerBuilder<S> {
    let (starts, first_slow) = (starts.clone(), first_slow.clone());
    Worker::builder(store.clone())
        .concurrency(concurrency)
        .handler("fast", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .handler("slow", KindOptions::new(), move |job, ctx| {
            let worker = ctx.worker_id().to_owned();
            starts
                .lock()
                .unwrap()
                .insert(job.id, (Instant::now(), worker));
            first_slow.notify_one();
            async move {
                tokio::time::sleep(slow_for).await;
                Ok(Outcome::done())
            }
        })
}

/// Waits until no job is pending or running, failing after 60 s; the states of `ids`. (Read
/// from one statement's snapshot, twice in a row: a job given back moves from `running` to
/// `pending`, which two separate counts could both miss.)
async fn until_settled<S: Store>(store: &S, ids: &[JobId]) -> HashMap<JobId, JobState> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 2 {
        let stats = store.queue_stats().await.unwrap();
        let left: u64 = stats
            .iter()
            .map(|q| q.counts.pending + q.counts.running)
            .sum();
        quiet = if left == 0 { quiet + 1 } else { 0 };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} jobs still pending or running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut states = HashMap::new();
    for &id in ids {
        states.insert(id, store.job(id).await.unwrap().unwrap().state);
    }
    states
}

/// Concurrency 1: as soon as the first slow job (100 ms) starts, the other slow jobs are
/// cancelled one by one. A job whose cancel answered `cancelled` never starts; one that
/// answered `running` had its start recorded as its permit freed, and begins within a round
/// trip of the answer, not a slow job later (before the fix, 58-59 of 59 began after their
/// cancel, held until a permit freed); every job that never started ends `cancelled`; the
/// worker counts none of them as a lost lease or a store error.
async fn a_held_job_cancelled_before_it_starts_never_starts<S: Store + Clone>(store: &S) {
    let slow = enqueue_fast_then_slow(store, 30).await;
    let (starts, first_slow) = (Starts::default(), Arc::new(Notify::new()));
    let handle = worker(store, 1, Duration::from_millis(100), &starts, &first_slow)
        .build()
        .unwrap()
        .start();
    tokio::time::timeout(Duration::from_secs(30), first_slow.notified())
        .await
        .expect("a slow job starts");
    let mut cancelled_at = Vec::new();
    for &id in &slow {
        // (One that ran to its end before its turn cannot be cancelled: it started before.)
        let state = match store.cancel(id).await {
            Ok(state) => state,
            Err(floodgate_queue::StoreError::InvalidState { state, .. }) => state,
            Err(e) => panic!("cancel {id}: {e}"),
        };
        cancelled_at.push((id, state, Instant::now()));
    }
    let settled = until_settled(store, &slow).await;
    let stats = handle.stats();
    handle.shutdown(Duration::from_secs(5)).await;
    let starts = starts.lock().unwrap().clone();
    let mut never_started = 0;
    let mut started_after = Vec::new();
    for (id, state, returned) in cancelled_at {
        match starts.get(&id) {
            Some(&(began, _)) => {
                if began > returned {
                    // Only a job whose start the store recorded before the cancel (`running`)
                    // may begin after it: the one whose permit was freeing.
                    assert_eq!(state, JobState::Running, "job {id}");
                    started_after.push((id, began - returned));
                }
            }
            None => {
                // Its cancel answered `cancelled`, or `running` for a job whose start was
                // recorded just ahead of a permit; either way it never ran and ends cancelled.
                never_started += 1;
                assert!(
                    matches!(state, JobState::Cancelled | JobState::Running),
                    "job {id}: {state}"
                );
                assert_eq!(settled[&id], JobState::Cancelled, "job {id}");
            }
        }
    }
    // A job held when its cancel came would begin when a permit frees, a slow job (100 ms)
    // later; one whose start was recorded begins within that statement's round trip.
    assert!(
        started_after
            .iter()
            .all(|(_, late)| *late < Duration::from_millis(50)),
        "jobs began long after their cancel was answered: {started_after:?}"
    );
    assert!(
        never_started >= slow.len() / 2,
        "most slow jobs were cancelled before they could start: {never_started} of {}",
        slow.len()
    );
    assert!(
        stats.cancelled <= never_started as u64,
        "{stats:?}: more cancellations counted than jobs cancelled"
    );
    assert_eq!(
        (stats.lease_lost, stats.store_errors),
        (0, 0),
        "{stats:?}: a cancelled held job is neither a lost lease nor an error"
    );
    assert_eq!(stats.succeeded, (FAST + starts.len()) as u64, "{stats:?}");
}

/// Concurrency 2: an urgent job (priority 10) enqueued while slow jobs are held starts at the
/// next free permit, ahead of every held job. Counted in slow jobs started between its enqueue
/// and its start (not in time, which a loaded machine stretches): at most two per permit (one
/// running into its start, one recorded as the permit freed), where it was 98 before the fix.
async fn an_urgent_job_overtakes_the_held_ones<S: Store + Clone>(store: &S) {
    enqueue_fast_then_slow(store, 100).await;
    let (starts, first_slow) = (Starts::default(), Arc::new(Notify::new()));
    let urgent_start: Arc<Mutex<Option<Instant>>> = Arc::default();
    let at = urgent_start.clone();
    let handle = worker(store, 2, Duration::from_millis(30), &starts, &first_slow)
        .handler("urgent", KindOptions::new(), move |_, _| {
            *at.lock().unwrap() = Some(Instant::now());
            async { Ok(Outcome::done()) }
        })
        .build()
        .unwrap()
        .start();
    tokio::time::timeout(Duration::from_secs(30), first_slow.notified())
        .await
        .expect("a slow job starts");
    let urgent = store
        .enqueue(NewJob::new("urgent", json!(null)).priority(10))
        .await
        .unwrap()
        .id;
    let enqueued = Instant::now();
    crate::support::eventually(store, urgent, JobState::Succeeded).await;
    handle.shutdown(Duration::from_millis(100)).await;
    let began = urgent_start.lock().unwrap().expect("the urgent job ran");
    let overtaken_by = starts
        .lock()
        .unwrap()
        .values()
        .filter(|(t, _)| *t > enqueued && *t < began)
        .count();
    assert!(
        overtaken_by <= 2 * 2,
        "{overtaken_by} slow jobs started after the urgent job was enqueued and before it \
         started ({:?} later)",
        began - enqueued
    );
}

/// Two workers of 4 permits, each on its own store (two processes' worth): the slow tail is
/// shared, each running between a quarter and three quarters of it.
async fn two_workers_share_the_slow_tail<S: Store + Clone>(store: &S, other: &S) {
    const SLOW: usize = 200;
    let (starts, first_slow) = (Starts::default(), Arc::new(Notify::new()));
    let handles: Vec<_> = [(store.clone(), "a"), (other.clone(), "b")]
        .into_iter()
        .map(|(s, name)| {
            worker(&s, 4, Duration::from_millis(25), &starts, &first_slow)
                .id(name)
                .build()
                .unwrap()
                .start()
        })
        .collect();
    for h in &handles {
        h.ready().await;
    }
    let slow = enqueue_fast_then_slow(store, SLOW).await;
    until_settled(store, &slow).await;
    for h in handles {
        h.shutdown(Duration::from_secs(5)).await;
    }
    let mut ran: HashMap<String, usize> = HashMap::new();
    for (_, worker) in starts.lock().unwrap().values() {
        *ran.entry(worker.clone()).or_default() += 1;
    }
    let (a, b) = (
        ran.get("a").copied().unwrap_or(0),
        ran.get("b").copied().unwrap_or(0),
    );
    assert_eq!(a + b, SLOW, "{ran:?}");
    for n in [a, b] {
        assert!(
            (SLOW / 4..=SLOW * 3 / 4).contains(&n),
            "each worker runs a fair share of the slow jobs: {ran:?}"
        );
    }
}

crate::support::backends!(
    a_held_job_cancelled_before_it_starts_never_starts,
    an_urgent_job_overtakes_the_held_ones,
);

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_workers_share_the_slow_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = floodgate_queue::SqliteStore::open(&path).await.unwrap();
    let other = floodgate_queue::SqliteStore::open(&path).await.unwrap();
    two_workers_share_the_slow_tail(&store, &other).await;
    other.close().await;
    store.close().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_workers_share_the_slow_tail() {
    let Some(schema) = floodgate_testing::postgres_schema("held_share").await else {
        return;
    };
    let store = crate::support::pg_builder(&schema).connect().await.unwrap();
    let other = crate::support::pg_builder(&schema).connect().await.unwrap();
    two_workers_share_the_slow_tail(&store, &other).await;
    other.close().await;
    store.close().await;
}
