//! Jobs a Rust worker holds (claimed ahead of a free permit, not started) as the HTTP API
//! shows them: `pending`, and a cancel, one by one or by filter, ends them at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodgate_queue::worker::{KindOptions, Outcome, Worker};
use floodgate_queue::{Claim, JobId, NewJob, Store};
use serde_json::json;
use tokio::sync::Notify;

use crate::support::{get, post, test_app};

/// A held job is `pending` in its view, in a `state=pending` listing and in the queue's
/// counts; started, it is `running`.
#[tokio::test]
async fn a_held_job_is_shown_pending() {
    let (app, state) = test_app().await;
    let store = state.store().clone();
    let id = store
        .enqueue(NewJob::new("k", json!(null)))
        .await
        .unwrap()
        .id;
    let held = store.claim(&Claim::new("w", 1).hold()).await.unwrap();
    assert_eq!(held.len(), 1);
    let job = get(&app, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job.body["state"], "pending", "{:?}", job.body);
    let listed = get(&app, "/v1/jobs?state=pending").await;
    assert_eq!(listed.body["jobs"][0]["id"], id.0);
    let running = get(&app, "/v1/jobs?state=running").await;
    assert_eq!(running.body["jobs"], json!([]));
    let queues = get(&app, "/v1/queues").await;
    let counts = &queues.body["queues"][0]["counts"];
    assert_eq!(
        (&counts["pending"], &counts["running"]),
        (&json!(1), &json!(0))
    );
    store.start_held(&[held[0].lease().unwrap()]).await.unwrap();
    let job = get(&app, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job.body["state"], "running");
}

/// 2,000 no-op jobs get a Rust worker (concurrency 1) claiming ahead, then 30 slow ones
/// (100 ms) wait at their tail. Once the first slow job starts, half the others are cancelled
/// one by one through `POST /v1/jobs/{id}/cancel`, the rest by filter through
/// `POST /v1/jobs/cancel`. A job answered `cancelled` never starts; one answered `running` had
/// its start recorded and begins within a round trip, not a slow job later; every job that
/// never started is `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The machine lock is a process-wide std lock shared with the blocking process tests; this
// test's own runtime holds it throughout, and nothing else on that runtime takes it.
#[allow(clippy::await_holding_lock)]
async fn jobs_a_worker_holds_are_cancelled_over_http_before_they_start() {
    // Measures latency: not beside the process tests' load. (A start within 50 ms.)
    let _machine = crate::support::process::whole_machine();
    let (app, state) = test_app().await;
    let store = state.store().clone();
    store
        .enqueue_many((0..2_000).map(|n| NewJob::new("fast", json!(n))).collect())
        .await
        .unwrap();
    let slow: Vec<JobId> = store
        .enqueue_many((0..30).map(|n| NewJob::new("slow", json!(n))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let starts: Arc<Mutex<HashMap<JobId, Instant>>> = Arc::default();
    let first = Arc::new(Notify::new());
    let (s, f) = (starts.clone(), first.clone());
    let worker = Worker::builder(store.clone())
        .concurrency(1)
        .handler("fast", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .handler("slow", KindOptions::new(), move |job, _| {
            s.lock().unwrap().insert(job.id, Instant::now());
            f.notify_one();
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    tokio::time::timeout(Duration::from_secs(30), first.notified())
        .await
        .expect("a slow job starts");
    let mut answered = Vec::new();
    for id in &slow[..15] {
        let a = post(&app, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        answered.push((
            *id,
            a.body["state"].as_str().unwrap().to_owned(),
            Instant::now(),
        ));
    }
    let bulk = post(&app, "/v1/jobs/cancel", json!({"kind": "slow"})).await;
    assert_eq!(bulk.status, 200, "{:?}", bulk.body);
    let bulk_answered = Instant::now();
    for id in &slow[15..] {
        answered.push((*id, String::new(), bulk_answered));
    }
    // Until nothing is left to run, seen twice in a row (a job given back moves from running to
    // pending between the two counts).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    loop {
        let left = get(&app, "/v1/jobs/count?kind=slow&state=pending")
            .await
            .body["count"]
            .as_u64()
            .unwrap()
            + get(&app, "/v1/jobs/count?kind=slow&state=running")
                .await
                .body["count"]
                .as_u64()
                .unwrap();
        quiet = if left == 0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} slow jobs left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown(Duration::from_secs(5)).await;
    let starts = starts.lock().unwrap().clone();
    let mut never_started = 0;
    for (id, said, at) in answered {
        let view = get(&app, &format!("/v1/jobs/{id}")).await;
        match starts.get(&id) {
            Some(&began) if began > at => {
                assert!(
                    said.is_empty() || said == "running",
                    "job {id} answered {said}"
                );
                assert!(
                    began - at < Duration::from_millis(50),
                    "job {id} began {:?} after its cancel was answered",
                    began - at
                );
            }
            Some(_) => {}
            None => {
                never_started += 1;
                assert_eq!(view.body["state"], "cancelled", "{:?}", view.body);
            }
        }
    }
    assert!(
        never_started >= 15,
        "only {never_started} of 30 were cancelled before they started"
    );
}
