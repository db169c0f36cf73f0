//! Claiming ahead (`WorkerBuilder::claim_ahead`): the bound, the off switch, priority order,
//! the jobs given back at shutdown and the ones rescued after a crash, on both backends.
//!
//! The scenario most cases share: a run of no-op `fast` jobs (priority 10) gets the worker
//! claiming ahead; behind them wait `slow` jobs (priority 1) whose handler blocks. When the
//! fast jobs run out, the worker's buffer fills with slow jobs while its two permits are held
//! by slow jobs that never end: jobs claimed ahead, leased, not started.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use floodgate_queue::worker::{KindOptions, Outcome, Worker, WorkerHandle};
use floodgate_queue::{JobId, JobState, NewJob, Store};
use serde_json::json;

use crate::support::eventually;

const FAST: usize = 3_000;
const SLOW: usize = 200;

/// Enqueues the fast and slow jobs; the slow ones' ids.
async fn enqueue_scenario<S: Store>(store: &S) -> Vec<JobId> {
    store
        .enqueue_many(
            (0..FAST)
                .map(|n| NewJob::new("fast", json!(n)).priority(10))
                .collect(),
        )
        .await
        .unwrap();
    store
        .enqueue_many(
            (0..SLOW)
                .map(|n| NewJob::new("slow", json!(n)).priority(1))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// A worker of two permits running the scenario; `slow` jobs block for an hour.
fn scenario_worker<S: Store + Clone>(store: &S, cap: Option<u32>) -> WorkerHandle {
    let mut builder = Worker::builder(store.clone())
        .concurrency(2)
        .lease_ttl(Duration::from_millis(600))
        .handler("fast", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .handler("slow", KindOptions::new(), |_, _| async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok(Outcome::done())
        });
    if let Some(cap) = cap {
        builder = builder.claim_ahead(cap);
    }
    builder.build().unwrap().start()
}

/// Waits until both permits hold slow jobs and the buffer holds at least one; the number
/// buffered.
async fn until_slow_jobs_wait_in_the_buffer<S: Store>(store: &S, handle: &WorkerHandle) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = handle.stats();
        let running = store.queue_stats().await.unwrap()[0].counts.running;
        // The buffered jobs are leased (running) in the store; both counts are read at once
        // only when the buffer is not being topped up meanwhile, so a mismatch waits.
        if stats.succeeded == FAST as u64
            && stats.running == 2
            && stats.prefetched > 0
            && running == 2 + stats.prefetched
            && handle.stats() == stats
        {
            return stats.prefetched;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slow job was claimed ahead: {stats:?}, {running} running in the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The buffer never holds more than the cap, is used, and its jobs' leases are kept alive
/// by the heartbeat (the lease is 600 ms; the wait below is longer).
async fn the_buffer_stays_within_its_cap_and_its_leases_are_extended<S: Store + Clone>(store: &S) {
    let slow = enqueue_scenario(store).await;
    let handle = scenario_worker(store, Some(5));
    let buffered = until_slow_jobs_wait_in_the_buffer(store, &handle).await;
    assert!((1..=5).contains(&buffered), "{buffered} buffered, cap 5");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        store.rescue_expired(1_000).await.unwrap().is_empty(),
        "no lease ran out: running and buffered jobs are both heartbeaten"
    );
    // Nothing leaves the buffer (both permits are held), and a top-up stays within the cap.
    let now_buffered = handle.stats().prefetched;
    assert!(
        (buffered..=5).contains(&now_buffered),
        "{now_buffered} buffered, was {buffered}, cap 5"
    );
    handle.shutdown(Duration::from_millis(100)).await;
    for id in slow {
        assert_eq!(
            store.job(id).await.unwrap().unwrap().state,
            JobState::Pending
        );
    }
}

/// `claim_ahead(0)` claims only what it can start, however fast the jobs are.
async fn claim_ahead_zero_turns_it_off<S: Store + Clone>(store: &S) {
    enqueue_scenario(store).await;
    let handle = scenario_worker(store, Some(0));
    let most = Arc::new(AtomicU64::new(0));
    let watch = {
        let (handle, most) = (handle.clone(), most.clone());
        tokio::spawn(async move {
            loop {
                most.fetch_max(handle.stats().prefetched, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handle.stats().succeeded < FAST as u64 || handle.stats().running < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    watch.abort();
    assert_eq!(
        most.load(Ordering::Relaxed),
        0,
        "nothing was ever claimed ahead"
    );
    assert_eq!(store.queue_stats().await.unwrap()[0].counts.running, 2);
    handle.shutdown(Duration::from_millis(100)).await;
}

/// With one permit, jobs start strictly in priority order although most of them come out of
/// the buffer.
async fn buffered_jobs_start_in_priority_order<S: Store + Clone>(store: &S) {
    // Priorities 1-10 in a scrambled order.
    store
        .enqueue_many(
            (0..2_000u32)
                .map(|n| NewJob::new("fast", json!(n)).priority(1 + ((n * 7919) % 10) as u8))
                .collect(),
        )
        .await
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let handle_cell: Arc<OnceLock<WorkerHandle>> = Arc::new(OnceLock::new());
    let most_buffered = Arc::new(AtomicU64::new(0));
    let (o, cell, most) = (order.clone(), handle_cell.clone(), most_buffered.clone());
    let handle = Worker::builder(store.clone())
        .concurrency(1)
        .handler("fast", KindOptions::new(), move |job, _| {
            o.lock().unwrap().push(job.priority);
            if let Some(h) = cell.get() {
                most.fetch_max(h.stats().prefetched, Ordering::Relaxed);
            }
            async { Ok(Outcome::done()) }
        })
        .build()
        .unwrap()
        .start();
    let _ = handle_cell.set(handle.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handle.stats().succeeded < 2_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 2_000);
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "started out of priority order"
    );
    assert!(
        most_buffered.load(Ordering::Relaxed) > 0,
        "the run never claimed ahead"
    );
}

/// A graceful shutdown gives the buffered jobs back at once, their attempt not spent.
async fn shutdown_gives_buffered_jobs_back_at_once<S: Store + Clone>(store: &S) {
    let slow = enqueue_scenario(store).await;
    let handle = scenario_worker(store, None);
    let buffered = until_slow_jobs_wait_in_the_buffer(store, &handle).await;
    let summary = handle.shutdown(Duration::from_millis(200)).await;
    // (The buffer may have been topped up since it was counted.)
    assert!(
        (buffered..=SLOW as u64 - 2).contains(&(summary.returned as u64)),
        "{} returned, {buffered} seen buffered",
        summary.returned
    );
    assert_eq!(
        summary.released, 2,
        "the two running slow jobs, at the deadline"
    );
    for id in slow {
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.attempt, 0, "no attempt spent on job {id}");
    }
}

/// A worker whose every kind is blocked by an open breaker claims nothing, however high its
/// claim-ahead estimate (a claim naming no kind would take every kind, even ones it has no
/// handler for).
async fn a_worker_whose_kinds_are_all_blocked_claims_nothing<S: Store + Clone>(store: &S) {
    let breaker = floodgate::breaker::CircuitBreaker::new("fast");
    let handle = Worker::builder(store.clone())
        .concurrency(2)
        .handler(
            "fast",
            KindOptions::new().breaker(breaker.clone()),
            |_, _| async { Ok(Outcome::done()) },
        )
        .build()
        .unwrap()
        .start();
    store
        .enqueue_many((0..FAST).map(|n| NewJob::new("fast", json!(n))).collect())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handle.stats().succeeded < FAST as u64 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    breaker.force_open();
    let foreign = store
        .enqueue(NewJob::new("not_mine", json!(null)))
        .await
        .unwrap()
        .id;
    let more = store
        .enqueue(NewJob::new("fast", json!(null)))
        .await
        .unwrap()
        .id;
    // Nothing signals a claim not made: give a wrong one the time to happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in [foreign, more] {
        assert_eq!(
            store.job(id).await.unwrap().unwrap().state,
            JobState::Pending
        );
    }
    assert_eq!(handle.stats().prefetched, 0);
    breaker.reset();
    eventually(store, more, JobState::Succeeded).await;
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        store.job(foreign).await.unwrap().unwrap().state,
        JobState::Pending
    );
}

crate::support::backends!(
    a_worker_whose_kinds_are_all_blocked_claims_nothing,
    the_buffer_stays_within_its_cap_and_its_leases_are_extended,
    claim_ahead_zero_turns_it_off,
    buffered_jobs_start_in_priority_order,
    shutdown_gives_buffered_jobs_back_at_once,
);

/// A crash (the worker's runtime dropped: no shutdown, no more heartbeats) leaves the
/// buffered jobs leased; once the leases run out they are rescued like the running ones, and
/// another worker runs every slow job.
async fn buffered_jobs_are_rescued_after_a_crash<S, F, Fut>(store: &S, open: F)
where
    S: Store + Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = S>,
{
    let slow = enqueue_scenario(store).await;
    let buffered = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let buffered = rt.block_on(async move {
            let crashing = open().await;
            let handle = scenario_worker(&crashing, None);
            until_slow_jobs_wait_in_the_buffer(&crashing, &handle).await
        });
        drop(rt); // the crash: every task of the worker gone at once
        buffered
    })
    .await
    .unwrap();
    // (The buffer may have been topped up between the count and the crash.)
    let held = store.queue_stats().await.unwrap()[0].counts.running;
    assert!(
        held >= 2 + buffered,
        "the crashed worker's jobs stay leased"
    );
    tokio::time::sleep(Duration::from_millis(700)).await; // the 600 ms leases run out
    let rescued = store.rescue_expired(1_000).await.unwrap();
    assert_eq!(rescued.len() as u64, held, "every job it held is rescued");
    let handle = Worker::builder(store.clone())
        .handler("slow", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    for id in slow {
        eventually(store, id, JobState::Succeeded).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_buffered_jobs_are_rescued_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = floodgate_queue::SqliteStore::open(&path).await.unwrap();
    buffered_jobs_are_rescued_after_a_crash(&store, move || async move {
        floodgate_queue::SqliteStore::open(&path).await.unwrap()
    })
    .await;
    store.close().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_buffered_jobs_are_rescued_after_a_crash() {
    let Some(schema) = floodgate_testing::postgres_schema("claim_ahead_crash").await else {
        return;
    };
    let store = crate::support::pg_builder(&schema).connect().await.unwrap();
    let crashing = crate::support::pg_builder(&schema);
    buffered_jobs_are_rescued_after_a_crash(&store, move || async move {
        crashing.connect().await.unwrap()
    })
    .await;
    store.close().await;
}
