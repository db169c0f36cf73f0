//! The LISTEN connection dropped under a running worker (its backend terminated, as a
//! failover or a network cut would): the worker falls back to polling, so no job waits longer
//! than the polling interval, and it listens again by itself, so new jobs start at once again.
//! Prints the start delays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate_queue::worker::{KindOptions, Outcome, Worker};
use floodgate_queue::{JobId, NewJob, Store};
use serde_json::json;
use tokio::time::Instant;

use crate::support;

/// Long enough that a start sooner than it came from a wake-up, not from a poll.
const POLL: Duration = Duration::from_secs(5);

/// The backends listening on `channel` now.
async fn listeners(admin: &sqlx::PgPool, channel: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND query LIKE $1",
    )
    .bind(format!("%{channel}%"))
    .fetch_all(admin)
    .await
    .expect("read pg_stat_activity")
}

#[tokio::test]
async fn a_dropped_listen_connection_falls_back_to_polling_and_listens_again() {
    let Some(harness) = support::postgres("listen_drop").await else {
        return;
    };
    let store = harness.store.clone();
    let admin = harness.guard.pool().clone();
    let channel = format!("floodgate_{}", harness.guard.name());
    let starts: Arc<Mutex<HashMap<JobId, Instant>>> = Arc::default();
    let seen = starts.clone();
    let handle = Worker::builder(store.clone())
        .poll_interval(POLL)
        .handler("k", KindOptions::new(), move |job, _| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().insert(job.id, Instant::now());
                Ok(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    let delay = |id: JobId, enqueued: Instant| {
        let starts = starts.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(at) = starts.lock().unwrap().get(&id) {
                    return *at - enqueued;
                }
                assert!(Instant::now() < deadline, "job {id} never started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let enqueue = |n: i32| {
        let store = store.clone();
        async move {
            let at = Instant::now();
            (
                store.enqueue(NewJob::new("k", json!(n))).await.unwrap().id,
                at,
            )
        }
    };
    support::eventually_true("the worker listens", || async {
        !listeners(&admin, &channel).await.is_empty()
    })
    .await;
    let before = listeners(&admin, &channel).await;
    let (id, at) = enqueue(1).await;
    let listening = delay(id, at).await;

    // The LISTEN connection is cut: a job enqueued now is found by the poll the drop causes,
    // or by the next one, never later.
    for pid in &before {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&admin)
            .await
            .expect("terminate the listener");
    }
    let (id, at) = enqueue(2).await;
    let cut = delay(id, at).await;
    support::eventually_true("the worker listens again", || async {
        let now = listeners(&admin, &channel).await;
        !now.is_empty() && now.iter().all(|pid| !before.contains(pid))
    })
    .await;
    let (id, at) = enqueue(3).await;
    let again = delay(id, at).await;
    println!(
        "start delays: listening {listening:?}; LISTEN cut {cut:?}; listening again {again:?} \
         (poll interval {POLL:?})"
    );
    assert!(listening < POLL / 2, "{listening:?}: not woken by LISTEN");
    assert!(
        cut <= POLL + Duration::from_secs(1),
        "{cut:?}: waited past the poll interval"
    );
    assert!(again < POLL / 2, "{again:?}: not woken by LISTEN again");
    handle.shutdown(Duration::from_secs(5)).await;
}
