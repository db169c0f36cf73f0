//! Claiming ahead (`WorkerBuilder::claim_ahead`): the bound, the off switch, priority order,
//! the jobs given back at shutdown and the ones rescued after a crash, on both backends. (The
//! promises held jobs keep when slow jobs follow quick ones are in `held_jobs.rs`.)
//!
//! Most cases run a batch of no-op `fast` jobs, which gets the worker claiming ahead in
//! hundreds, and look at the jobs it holds (claimed ahead, not started) while it runs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use floodgate_queue::worker::{KindOptions, Outcome, Worker, WorkerHandle};
use floodgate_queue::{JobId, JobState, ListJobs, NewJob, Store};
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

/// Waits until the worker holds jobs while the fast jobs run; the number held then.
async fn until_jobs_are_held(handle: &WorkerHandle) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stats = handle.stats();
        if stats.prefetched > 0 && stats.succeeded > 100 {
            return stats.prefetched;
        }
        assert!(
            stats.succeeded < FAST as u64 && tokio::time::Instant::now() < deadline,
            "no job was seen held while the fast jobs ran: {stats:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// Every job of the store, by listing.
async fn all_jobs<S: Store>(store: &S) -> Vec<floodgate_queue::Job> {
    let mut jobs = Vec::new();
    let mut list = ListJobs {
        limit: 1_000,
        ..ListJobs::default()
    };
    loop {
        let page = store.list(&list).await.unwrap();
        jobs.extend(page.jobs);
        match page.next {
            Some(before) => list.before = Some(before),
            None => return jobs,
        }
    }
}

/// The jobs held never exceed what the cap allows (held: the cap plus the permits' worth a claim
/// tops up for; recorded to start: the same again), not the claim batch of 500, and are used.
async fn the_buffer_stays_within_its_cap<S: Store + Clone>(store: &S) {
    enqueue_scenario(store).await;
    let handle = scenario_worker(store, Some(5));
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while handle.stats().succeeded < FAST as u64 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watch.abort();
    let most = most.load(Ordering::Relaxed);
    assert!(
        (1..=2 * (5 + 2)).contains(&most),
        "{most} held at most, cap 5, 2 permits: {:?}",
        handle.stats()
    );
    handle.shutdown(Duration::from_millis(100)).await;
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
    // (A bound for a stuck run, not a timing: 3,000 claims of two jobs on a loaded machine.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while handle.stats().succeeded < 2_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Before shutdown, whose give-back is not a reordering.
    let gave_back = handle.stats().gave_back;
    handle.shutdown(Duration::from_secs(5)).await;
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 2_000);
    // Strict order, but for held jobs given back (a no-op handler descheduled on a loaded
    // machine looks like a slow job or a stall; what went back starts after the jobs already
    // recorded): at most one inversion per job given back, none on a quiet run.
    let inversions = order.windows(2).filter(|w| w[0] < w[1]).count() as u64;
    assert!(
        inversions <= gave_back,
        "started out of priority order {inversions} times, {gave_back} jobs given back: {:?}",
        order
            .windows(2)
            .position(|w| w[0] < w[1])
            .map(|i| &order[i.saturating_sub(3)..(i + 4).min(order.len())])
    );
    assert!(
        most_buffered.load(Ordering::Relaxed) > 0,
        "the run never claimed ahead"
    );
}

/// A graceful shutdown in the middle of a run gives the held jobs back at once, their attempt
/// not spent: afterwards no job is running, and each one not run is pending at attempt 0.
async fn shutdown_gives_buffered_jobs_back_at_once<S: Store + Clone>(store: &S) {
    enqueue_scenario(store).await;
    let handle = scenario_worker(store, None);
    until_jobs_are_held(&handle).await;
    let summary = handle.shutdown(Duration::from_secs(5)).await;
    assert!(summary.returned > 0, "{summary:?}");
    let stats = handle.stats();
    assert_eq!(stats.prefetched, 0);
    let jobs = all_jobs(store).await;
    let succeeded = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .count();
    assert_eq!(succeeded as u64, stats.succeeded);
    for job in jobs.iter().filter(|j| j.state != JobState::Succeeded) {
        assert_eq!(job.state, JobState::Pending, "{job:?}");
        assert_eq!(job.attempt, 0, "no attempt spent on {job:?}");
        assert_eq!(job.lease_token, None, "{job:?}");
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
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
    the_buffer_stays_within_its_cap,
    claim_ahead_zero_turns_it_off,
    buffered_jobs_start_in_priority_order,
    shutdown_gives_buffered_jobs_back_at_once,
);

/// A crash (the worker's runtime dropped: no shutdown, no more heartbeats) leaves the held
/// jobs leased, reported `pending`; once the leases run out they are rescued like the running
/// ones, the held ones with their attempt unspent (they never ran), and another worker runs
/// every job.
async fn buffered_jobs_are_rescued_after_a_crash<S, F, Fut>(store: &S, open: F)
where
    S: Store + Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = S>,
{
    let ids: Vec<JobId> = store
        .enqueue_many((0..FAST).map(|n| NewJob::new("fast", json!(n))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    // A crash at the very moment the worker gave back everything it held (a stall alarm)
    // leaves nothing leased and proves nothing: then crash another worker, up to five times.
    let mut crashes = 0;
    let (jobs, held) = loop {
        crashes += 1;
        let open = open.clone();
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let crashing = open().await;
                let handle = scenario_worker(&crashing, None);
                until_jobs_are_held(&handle).await
            });
            drop(rt); // the crash: every task of the worker gone at once
        })
        .await
        .unwrap();
        // Statements the crashed worker had sent (a completion batch) may still commit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let jobs = all_jobs(store).await;
        let held: Vec<JobId> = jobs
            .iter()
            .filter(|j| j.state == JobState::Pending && j.lease_token.is_some())
            .map(|j| j.id)
            .collect();
        let running = jobs.iter().filter(|j| j.state == JobState::Running).count();
        // (What it held may all have been recorded to start, and so shows as running.)
        if held.len() + running > 0 {
            break (jobs, held);
        }
        assert!(
            crashes < 5,
            "the crashed worker's jobs stay leased: in {crashes} crashes none was"
        );
        println!("crash {crashes}: nothing was leased at that moment; crashing another worker");
    };
    assert!(
        held.iter().all(|id| jobs
            .iter()
            .any(|j| j.id == *id && j.started_at.is_none() && j.attempt == 1)),
        "held jobs are reported pending, unstarted, their claim's attempt counted"
    );
    tokio::time::sleep(Duration::from_millis(700)).await; // the 600 ms leases run out
    // Rescue as the maintenance loop does, round after round: on a loaded machine a row the
    // crashed connection still locks (its server-side session not yet reaped) is skipped by
    // one round and taken by a later one. Every job it held is rescued, none twice.
    let leased: std::collections::BTreeSet<JobId> = jobs
        .iter()
        .filter(|j| j.lease_token.is_some())
        .map(|j| j.id)
        .collect();
    let mut rescued = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rescued.len() < leased.len() && tokio::time::Instant::now() < deadline {
        for job in store.rescue_expired(10_000).await.unwrap() {
            assert!(rescued.insert(job.id), "{:?} rescued twice", job.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rescued, leased, "every job it held is rescued");
    for id in &held {
        let job = store.job(*id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (JobState::Pending, 0),
            "a held job is rescued with its attempt unspent: {job:?}"
        );
    }
    let handle = Worker::builder(store.clone())
        .handler("fast", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    for id in ids {
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
    let reopen = path.clone();
    buffered_jobs_are_rescued_after_a_crash(&store, move || {
        let path = reopen.clone();
        async move { floodgate_queue::SqliteStore::open(&path).await.unwrap() }
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
    let (options, name) = (schema.connect_options(), schema.name().to_owned());
    buffered_jobs_are_rescued_after_a_crash(&store, move || {
        let crashing = floodgate_queue::PgStore::builder_with(options.clone()).schema(&name);
        async move { crashing.connect().await.unwrap() }
    })
    .await;
    store.close().await;
}
