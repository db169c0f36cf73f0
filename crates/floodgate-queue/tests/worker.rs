//! The worker runtime end to end, on SQLite and (when reachable) PostgreSQL: limits, retries,
//! dead letters, panics, timeouts, breakers, lost leases, cancellation, wake-ups, the memory
//! watch and graceful shutdown.
#![allow(unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use floodgate::breaker::CircuitBreaker;
use floodgate::retry::ExponentialBackoff;
use floodgate_queue::worker::{
    JobError, KindOptions, MemoryWatch, Outcome, Worker, WorkerEvent, WorkerHandle,
};
use floodgate_queue::{Claim, Job, JobId, JobState, NewJob, Store};
use serde_json::json;

mod support;

use support::{eventually, next_event};

fn quick_retry() -> KindOptions {
    KindOptions::new().retry(
        ExponentialBackoff::new(Duration::from_millis(10))
            .cap(Duration::from_millis(20))
            .max_attempts(u32::MAX)
            .jitter(floodgate::retry::Jitter::None),
    )
}

/// Counts handlers running at once, and the most ever.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

support::backends!(
    runs_jobs_and_keeps_results,
    claims_only_what_it_can_start,
    per_kind_limits_hold,
    failures_retry_with_backoff_then_go_dead,
    permanent_errors_and_bad_payloads_go_dead_at_once,
    a_panicking_handler_fails_its_job_and_the_worker_goes_on,
    a_slow_attempt_times_out,
    an_open_breaker_stops_claims_of_its_kind,
    skipped_and_paused_groups_wait_while_other_groups_flow,
    a_worker_that_lost_its_lease_cannot_complete,
    cancellation_reaches_the_running_handler,
    an_idle_worker_wakes_on_enqueue,
    memory_above_the_high_water_mark_stops_claims,
    shutdown_finishes_in_time_or_releases,
    the_shutdown_coordinator_drains_the_worker,
    protective_mode_shrinks_the_worker_and_says_so,
    shutdown_leaves_no_claimed_job_running,
    stats_count_every_outcome_and_ready_says_when_it_listens,
);

async fn runs_jobs_and_keeps_results<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .handler("double", KindOptions::new(), |job: Job, _| async move {
            let n = job.payload["n"].as_i64().unwrap();
            Ok(Outcome::with_result(json!(n * 2)))
        })
        .build()
        .unwrap()
        .start();
    let ids: Vec<JobId> = store
        .enqueue_many(
            (0..100)
                .map(|n| NewJob::new("double", json!({ "n": n })))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let job = eventually(store, *id, JobState::Succeeded).await;
        assert_eq!(job.result, Some(json!(n as i64 * 2)));
        assert_eq!(job.attempt, 1);
    }
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn claims_only_what_it_can_start<S: Store + Clone>(store: &S) {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gauge = Arc::new(Gauge::default());
    let (r, g) = (release.clone(), gauge.clone());
    let handle = Worker::builder(store.clone())
        .concurrency(2)
        .handler("block", KindOptions::new(), move |_, _| {
            let (r, g) = (r.clone(), g.clone());
            async move {
                g.enter();
                r.acquire().await.unwrap().forget();
                g.leave();
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let ids: Vec<JobId> = store
        .enqueue_many((0..10).map(|n| NewJob::new("block", json!(n))).collect())
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    while gauge.now.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Full, it passes up its next chances to claim (a hoarding worker would claim instead).
    let seen = handle.stats().claims_passed_up;
    support::passes_up(&handle, seen + 2).await;
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(
        stats[0].counts.running, 2,
        "no hoarding: only the two it can run are claimed"
    );
    assert_eq!(stats[0].counts.pending, 8);
    release.add_permits(10);
    for id in ids {
        eventually(store, id, JobState::Succeeded).await;
    }
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn per_kind_limits_hold<S: Store + Clone>(store: &S) {
    let slow = Arc::new(Gauge::default());
    let all = Arc::new(Gauge::default());
    let (s1, a1, a2) = (slow.clone(), all.clone(), all.clone());
    let handle = Worker::builder(store.clone())
        .concurrency(4)
        .handler(
            "slow",
            KindOptions::new().max_concurrency(1).priority(10),
            move |_, _| {
                let (s, a) = (s1.clone(), a1.clone());
                async move {
                    s.enter();
                    a.enter();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    a.leave();
                    s.leave();
                    Ok(Outcome::done())
                }
            },
        )
        .handler("fast", KindOptions::new(), move |_, _| {
            let a = a2.clone();
            async move {
                a.enter();
                tokio::time::sleep(Duration::from_millis(5)).await;
                a.leave();
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let jobs = (0..10)
        .flat_map(|n| [NewJob::new("slow", json!(n)), NewJob::new("fast", json!(n))])
        .collect();
    let ids = store.enqueue_many(jobs).await.unwrap();
    for e in ids {
        eventually(store, e.id, JobState::Succeeded).await;
    }
    assert_eq!(slow.max.load(Ordering::SeqCst), 1, "per-kind limit");
    assert!(all.max.load(Ordering::SeqCst) <= 4, "global limit");
    assert!(
        all.max.load(Ordering::SeqCst) >= 2,
        "kinds ran side by side"
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn failures_retry_with_backoff_then_go_dead<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .handler("flaky", quick_retry(), |job: Job, ctx| async move {
            assert_eq!(job.attempt, ctx.attempt());
            Err(JobError::retry(format!("attempt {} failed", ctx.attempt())))
        })
        .build()
        .unwrap()
        .start();
    let mut events = handle.events();
    let id = store
        .enqueue(NewJob::new("flaky", json!(null)).max_attempts(3))
        .await
        .unwrap()
        .id;
    let dead = eventually(store, id, JobState::Dead).await;
    assert_eq!(dead.attempt, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("attempt 3 failed"),
        "dead letter keeps the last error"
    );
    // The state can be read before the last event is sent: wait for the events themselves.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while seen.last() != Some(&"dead") {
            match events.recv().await.unwrap() {
                WorkerEvent::Failed { .. } => seen.push("failed"),
                WorkerEvent::Dead { .. } => seen.push("dead"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, ["failed", "failed", "dead"]);
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn permanent_errors_and_bad_payloads_go_dead_at_once<S: Store + Clone>(store: &S) {
    #[derive(serde::Deserialize)]
    struct Charge {
        #[allow(dead_code)]
        cents: u64,
    }
    let handle = Worker::builder(store.clone())
        .handler("auth", KindOptions::new(), |_, _| async {
            Err(JobError::permanent("401 from the API"))
        })
        .typed_handler("charge", KindOptions::new(), |_c: Charge, _| async {
            Ok(Outcome::done())
        })
        .handler("later", KindOptions::new(), |job: Job, _| async move {
            if job.payload == json!("first") {
                Err(JobError::snooze(Duration::from_millis(30)))
            } else {
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let auth = store
        .enqueue(NewJob::new("auth", json!(null)))
        .await
        .unwrap()
        .id;
    let bad = store
        .enqueue(NewJob::new("charge", json!({"cents": "ten"})))
        .await
        .unwrap()
        .id;
    let good = store
        .enqueue(NewJob::new("charge", json!({"cents": 10})))
        .await
        .unwrap()
        .id;
    let dead = eventually(store, auth, JobState::Dead).await;
    assert_eq!(dead.attempt, 1);
    assert_eq!(dead.last_error.as_deref(), Some("401 from the API"));
    let undecodable = eventually(store, bad, JobState::Dead).await;
    assert!(undecodable.last_error.unwrap().contains("does not decode"));
    eventually(store, good, JobState::Succeeded).await;

    // A snooze spends no attempt.
    let snoozed = store
        .enqueue(NewJob::new("later", json!("first")))
        .await
        .unwrap()
        .id;
    // (Pending and unleased: a job the worker merely holds is reported pending too, its
    // claim's attempt counted until it is given back.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let s = loop {
        let job = store.job(snoozed).await.unwrap().unwrap();
        if job.state == JobState::Pending
            && job.lease_token.is_none()
            && job.run_at > job.created_at
        {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(s.attempt, 0);
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn a_panicking_handler_fails_its_job_and_the_worker_goes_on<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .handler("maybe_panic", quick_retry(), |job: Job, _| async move {
            if job.payload == json!("boom") {
                panic!("exploded on purpose");
            }
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let boom = store
        .enqueue(NewJob::new("maybe_panic", json!("boom")).max_attempts(1))
        .await
        .unwrap()
        .id;
    let dead = eventually(store, boom, JobState::Dead).await;
    assert!(
        dead.last_error
            .unwrap()
            .contains("panicked: exploded on purpose")
    );
    let fine = store
        .enqueue(NewJob::new("maybe_panic", json!("ok")))
        .await
        .unwrap()
        .id;
    eventually(store, fine, JobState::Succeeded).await;
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn a_slow_attempt_times_out<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .handler(
            "slow",
            quick_retry().timeout(Duration::from_millis(50)),
            |_, _| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Outcome::done())
            },
        )
        .build()
        .unwrap()
        .start();
    let id = store
        .enqueue(NewJob::new("slow", json!(null)).max_attempts(1))
        .await
        .unwrap()
        .id;
    let dead = eventually(store, id, JobState::Dead).await;
    assert!(dead.last_error.unwrap().contains("timed out after 50ms"));
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn an_open_breaker_stops_claims_of_its_kind<S: Store + Clone>(store: &S) {
    let breaker = CircuitBreaker::new("partner-api");
    breaker.force_open();
    let handle = Worker::builder(store.clone())
        .poll_interval(Duration::from_millis(20))
        .handler(
            "call_partner",
            KindOptions::new().breaker(breaker.clone()),
            |_, _| async { Ok(Outcome::done()) },
        )
        .handler("witness", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let id = store
        .enqueue(NewJob::new("call_partner", json!(null)))
        .await
        .unwrap()
        .id;
    // A later job of another kind: a claim that takes it would have taken the older job
    // first had its kind been claimable, so once it has run, a claim has passed it over.
    let witness = store
        .enqueue(NewJob::new("witness", json!(null)))
        .await
        .unwrap()
        .id;
    eventually(store, witness, JobState::Succeeded).await;
    let waiting = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        waiting.state,
        JobState::Pending,
        "not claimed while the breaker is open"
    );
    assert_eq!(waiting.attempt, 0);
    let mut events = handle.events();
    breaker.reset();
    eventually(store, id, JobState::Succeeded).await;
    let change = next_event(&mut events, |e| match e {
        WorkerEvent::BreakerChanged { kind, to, .. } => Some((kind, to)),
        _ => None,
    })
    .await;
    assert_eq!(
        change,
        ("call_partner".to_owned(), floodgate::breaker::State::Closed)
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn skipped_and_paused_groups_wait_while_other_groups_flow<S: Store + Clone>(store: &S) {
    let down = Arc::new(std::sync::Mutex::new(vec!["sick".to_owned()]));
    let skip = down.clone();
    // Paused before the worker starts: a running worker sees a pause within a poll interval.
    store.pause_group("gone", "410 Gone").await.unwrap();
    let handle = Worker::builder(store.clone())
        .poll_interval(Duration::from_millis(20))
        .skip_groups(move || skip.lock().unwrap().clone())
        .handler("call", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let enqueue = |group: &'static str| {
        let store = store.clone();
        async move {
            store
                .enqueue(NewJob::new("call", json!(null)).group(group))
                .await
                .unwrap()
                .id
        }
    };
    let sick = enqueue("sick").await;
    let gone = enqueue("gone").await;
    // Later jobs of other groups: once they have run, claims have passed the older ones over.
    let healthy: Vec<JobId> = futures_util::future::join_all((0..20).map(|_| enqueue("ok"))).await;
    for id in &healthy {
        eventually(store, *id, JobState::Succeeded).await;
    }
    for id in [sick, gone] {
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (JobState::Pending, 0),
            "{:?}",
            job.group()
        );
    }
    down.lock().unwrap().clear();
    eventually(store, sick, JobState::Succeeded).await;
    assert_eq!(
        store.job(gone).await.unwrap().unwrap().state,
        JobState::Pending
    );
    assert!(store.resume_group("gone").await.unwrap());
    eventually(store, gone, JobState::Succeeded).await;
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn a_worker_that_lost_its_lease_cannot_complete<S: Store + Clone>(store: &S) {
    let started = Arc::new(tokio::sync::Notify::new());
    let go_on = Arc::new(tokio::sync::Notify::new());
    let (s, g) = (started.clone(), go_on.clone());
    let handle = Worker::builder(store.clone())
        .id("paused-worker")
        // Its one permit is held by the paused job, so it cannot claim the job back itself.
        .concurrency(1)
        .lease_ttl(Duration::from_secs(60))
        .handler("pay", KindOptions::new(), move |_, _| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                s.notify_one();
                g.notified().await; // "paused" past its lease
                Ok(Outcome::with_result(json!("from the paused worker")))
            }
        })
        .build()
        .unwrap()
        .start();
    let mut events = handle.events();
    let id = store
        .enqueue(NewJob::new("pay", json!(null)))
        .await
        .unwrap()
        .id;
    started.notified().await;
    // The lease runs out while the worker is paused: another node rescues and runs the job.
    let job = store.job(id).await.unwrap().unwrap();
    let stale = job.lease().unwrap();
    store
        .extend_leases("paused-worker", &[stale], Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.rescue_expired(10).await.unwrap().len(), 1);
    let taken = store.claim(&Claim::new("other-node", 1)).await.unwrap();
    assert_eq!(taken[0].id, id);
    store
        .complete(
            taken[0].lease().unwrap(),
            Some(json!("from the other node")),
        )
        .await
        .unwrap();
    go_on.notify_one();
    let lost = next_event(&mut events, |e| match e {
        WorkerEvent::LeaseLost { id, .. } => Some(id),
        _ => None,
    })
    .await;
    assert_eq!(lost, id);
    let done = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        done.result,
        Some(json!("from the other node")),
        "the paused worker wrote nothing"
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn cancellation_reaches_the_running_handler<S: Store + Clone>(store: &S) {
    let started = Arc::new(tokio::sync::Notify::new());
    let s = started.clone();
    let handle = Worker::builder(store.clone())
        .lease_ttl(Duration::from_millis(150)) // heartbeat every 50 ms
        .handler("long", KindOptions::new(), move |_, ctx| {
            let s = s.clone();
            async move {
                s.notify_one();
                ctx.stopping().await;
                Err(JobError::retry("stopped on request"))
            }
        })
        .build()
        .unwrap()
        .start();
    let id = store
        .enqueue(NewJob::new("long", json!(null)))
        .await
        .unwrap()
        .id;
    started.notified().await;
    assert_eq!(store.cancel(id).await.unwrap(), JobState::Running);
    eventually(store, id, JobState::Cancelled).await;
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn an_idle_worker_wakes_on_enqueue<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .poll_interval(Duration::from_secs(3600)) // only a notification can wake it
        .handler("k", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    tokio::time::timeout(Duration::from_secs(10), handle.ready())
        .await
        .expect("idle and listening within 10 s");
    let id = store
        .enqueue(NewJob::new("k", json!(null)))
        .await
        .unwrap()
        .id;
    eventually(store, id, JobState::Succeeded).await;
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn memory_above_the_high_water_mark_stops_claims<S: Store + Clone>(store: &S) {
    let handle: WorkerHandle = Worker::builder(store.clone())
        .poll_interval(Duration::from_millis(20))
        .memory_watch(MemoryWatch {
            high: 1, // any process is above one byte
            low: 0,
            every: Duration::from_millis(10),
        })
        .handler("k", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let mut events = handle.events();
    let high = next_event(&mut events, |e| match e {
        WorkerEvent::MemoryHigh { rss } => Some(rss),
        _ => None,
    })
    .await;
    assert!(high > 1);
    // A claim round that passes up for memory comes after any claim in flight when the mark
    // was passed (one task claims, one round at a time).
    let seen = handle.stats().claims_passed_up;
    support::passes_up(&handle, seen + 1).await;
    let id = store
        .enqueue(NewJob::new("k", json!(null)))
        .await
        .unwrap()
        .id;
    // Rounds after the enqueue (woken by it, then polls) pass it up too.
    let seen = handle.stats().claims_passed_up;
    support::passes_up(&handle, seen + 3).await;
    assert_eq!(
        store.job(id).await.unwrap().unwrap().state,
        JobState::Pending
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn shutdown_finishes_in_time_or_releases<S: Store + Clone>(store: &S) {
    // "quick" finishes when let go (after shutdown has begun); "stuck" never does.
    let let_go = Arc::new(tokio::sync::Semaphore::new(0));
    let l = let_go.clone();
    let handle = Worker::builder(store.clone())
        .handler("quick", KindOptions::new(), move |_, _| {
            let l = l.clone();
            async move {
                l.acquire().await.unwrap().forget();
                Ok(Outcome::done())
            }
        })
        .handler("stuck", KindOptions::new(), |_, _| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let quick = store
        .enqueue(NewJob::new("quick", json!(null)))
        .await
        .unwrap()
        .id;
    let stuck = store
        .enqueue(NewJob::new("stuck", json!(null)))
        .await
        .unwrap()
        .id;
    eventually(store, quick, JobState::Running).await;
    eventually(store, stuck, JobState::Running).await;
    let stopping = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.shutdown(Duration::from_millis(1_500)).await })
    };
    // Let the drain begin before the quick job is let go (nothing signals its start).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let_go.add_permits(1);
    let summary = stopping.await.unwrap();
    assert_eq!(summary.released, 1);
    assert_eq!(
        summary.finished, 1,
        "the quick job finished inside the drain"
    );
    assert_eq!(
        store.job(quick).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    let back = store.job(stuck).await.unwrap().unwrap();
    assert_eq!(
        back.state,
        JobState::Pending,
        "released at once, not after the lease"
    );
    assert_eq!(back.attempt, 0, "the interrupted attempt is given back");
    // A second call reports the same.
    assert_eq!(handle.shutdown(Duration::from_secs(1)).await, summary);
}

async fn the_shutdown_coordinator_drains_the_worker<S: Store + Clone>(store: &S) {
    let shutdown = floodgate::shutdown::Shutdown::new(Duration::from_secs(10));
    let handle = Worker::builder(store.clone())
        .handler("slow", KindOptions::new(), |_, _| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    handle.attach(&shutdown, Duration::from_secs(5));
    let id = store
        .enqueue(NewJob::new("slow", json!(null)))
        .await
        .unwrap()
        .id;
    eventually(store, id, JobState::Running).await;
    shutdown.trigger();
    let report = shutdown.run().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        store.job(id).await.unwrap().unwrap().state,
        JobState::Succeeded,
        "the running job finished inside the drain"
    );
    assert_eq!(handle.running(), 0);
}

async fn protective_mode_shrinks_the_worker_and_says_so<S: Store + Clone>(store: &S) {
    use floodgate::breaker::{BreakerRegistry, ProtectiveMode};
    let limiter = floodgate::Limiter::new(10);
    let registry = BreakerRegistry::builder()
        .protective_mode(ProtectiveMode::new(limiter.clone(), 1, 0.2))
        .build()
        .unwrap();
    let handle = Worker::builder(store.clone())
        .limiter(limiter.clone())
        .watch_registry(&registry)
        .handler("k", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let mut events = handle.events();
    registry.get("payments").unwrap().force_open();
    let (open, limit, base) = next_event(&mut events, |e| match e {
        WorkerEvent::ProtectiveMode { open, limit, base } => Some((open, limit, base)),
        _ => None,
    })
    .await;
    assert_eq!((open, base), (1, 10));
    assert_eq!(limit, 2);
    assert_eq!(limiter.limit(), 2, "the worker now runs at most 2 jobs");
    handle.shutdown(Duration::from_secs(5)).await;
}

/// The server drops the worker's connections while a job runs: the completion is retried on
/// a new connection and recorded, not left for the rescuer.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_survives_dropped_connections() {
    let Some(support::Harness {
        store,
        guard: schema,
    }) = support::postgres("dropped_conns").await
    else {
        return;
    };
    let started = Arc::new(tokio::sync::Notify::new());
    let go = Arc::new(tokio::sync::Notify::new());
    let (s, g) = (started.clone(), go.clone());
    let handle = Worker::builder(store.clone())
        .handler("k", KindOptions::new(), move |job: Job, _| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                if job.payload == json!("wait") {
                    s.notify_one();
                    g.notified().await;
                }
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let warm = store
        .enqueue(NewJob::new("k", json!("warm")))
        .await
        .unwrap()
        .id;
    eventually(&store, warm, JobState::Succeeded).await;
    let mut events = handle.events();
    let id = store
        .enqueue(NewJob::new("k", json!("wait")))
        .await
        .unwrap()
        .id;
    started.notified().await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE '%' || $1 || '%'",
    )
    .bind(schema.name())
    .fetch_one(schema.pool())
    .await
    .unwrap();
    assert!(killed >= 1, "the worker's connections were found");
    go.notify_one();
    let done = next_event(&mut events, |e| match e {
        WorkerEvent::Succeeded { id: done, .. } if done == id => Some(Ok(())),
        WorkerEvent::StoreError { error } if error.starts_with(&format!("finishing job {id}:")) => {
            Some(Err(error))
        }
        _ => None,
    })
    .await;
    assert_eq!(done, Ok(()), "the completion was retried, not dropped");
    assert_eq!(
        store.job(id).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    handle.shutdown(Duration::from_secs(5)).await;
    store.close().await;
}

/// Regression (issue 12, case 4): shutdown once returned while a claim was in flight; the jobs
/// it claimed were started after the wait, stayed `running` in the database after `shutdown`
/// returned, and were missing from the summary.
async fn shutdown_leaves_no_claimed_job_running<S: Store + Clone>(store: &S) {
    for round in 0..6u64 {
        let queue = format!("round-{round}");
        store
            .enqueue_many(
                (0..1_000)
                    .map(|n| NewJob::new("work", json!({ "n": n })).queue(queue.clone()))
                    .collect(),
            )
            .await
            .unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let handle = Worker::builder(store.clone())
            .queues([queue.clone()])
            .concurrency(16)
            .handler("work", KindOptions::new(), {
                let started = started.clone();
                move |_job: Job, _| {
                    started.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok(Outcome::done())
                    }
                }
            })
            .build()
            .unwrap()
            .start();
        tokio::time::sleep(Duration::from_millis(20 + round * 18)).await;
        let summary = handle.shutdown(Duration::from_secs(10)).await;
        let stats = store.queue_stats().await.unwrap();
        let ours = stats.iter().find(|q| q.queue == queue).unwrap();
        assert_eq!(
            ours.counts.get(JobState::Running),
            0,
            "round {round}: jobs left running after shutdown returned ({summary:?})"
        );
        assert_eq!(
            ours.counts.get(JobState::Succeeded) + summary.released as u64,
            started.load(Ordering::SeqCst) as u64,
            "round {round}: every started job ended or was released"
        );
        assert_eq!(
            ours.counts.get(JobState::Pending) + started.load(Ordering::SeqCst) as u64
                - summary.released as u64,
            1_000,
            "round {round}"
        );
    }
}

/// The stats snapshot counts every outcome (no event to miss), and `ready` resolves once the
/// worker listens, so an enqueue right after it is noticed without a poll.
async fn stats_count_every_outcome_and_ready_says_when_it_listens<S: Store + Clone>(store: &S) {
    let handle = Worker::builder(store.clone())
        .poll_interval(Duration::from_secs(3600)) // only wake-ups can start these jobs
        .handle("ok", |_: Job, _| async { Ok(Outcome::done()) })
        .handle_typed("strict", |n: u32, _| async move {
            Err(JobError::permanent(format!("{n} refused")))
        })
        .build()
        .unwrap()
        .start();
    tokio::time::timeout(Duration::from_secs(10), handle.ready())
        .await
        .expect("ready within 10 s");
    let mut jobs: Vec<_> = (0..5).map(|n| NewJob::new("ok", json!(n))).collect();
    jobs.push(NewJob::new("strict", json!(1)));
    jobs.push(NewJob::new("strict", json!("not a number")));
    store.enqueue_many(jobs).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = handle.stats();
        if stats.succeeded == 5 && stats.dead == 2 && stats.running == 0 {
            assert_eq!(stats.claimed, 7, "{stats:?}");
            assert_eq!(
                stats.retried + stats.lease_lost + stats.store_errors,
                0,
                "{stats:?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
}
