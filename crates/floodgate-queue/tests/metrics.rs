//! The store's counters carry its name (and the queue or outcome where they have one).

use floodgate_queue::{Claim, LeaseToken, NewJob, SqliteStore, Store};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

#[test]
fn counters_are_labelled_with_the_store_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::builder(dir.path().join("m.db"))
                .name("orders")
                .open()
                .await
                .unwrap();
            for key in ["a", "b", "a"] {
                store
                    .enqueue(
                        NewJob::new("k", json!(1))
                            .queue("mail")
                            .idempotency_key(key),
                    )
                    .await
                    .unwrap();
            }
            let jobs = store
                .claim(&Claim::new("w", 2).queues(["mail"]))
                .await
                .unwrap();
            store
                .complete(jobs[0].lease().unwrap(), None)
                .await
                .unwrap();
            let mut stale = jobs[1].lease().unwrap();
            stale.token = LeaseToken(stale.token.0 ^ 1);
            assert!(store.complete(stale, None).await.is_err());
            store.close().await;
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, label: Option<(&str, &str)>| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "store" && l.value() == "orders")
                    && label
                        .is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        counter("floodgate_queue_enqueued_total", Some(("queue", "mail"))),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        counter("floodgate_queue_duplicates_total", Some(("queue", "mail"))),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        counter("floodgate_queue_claimed_total", None),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        counter(
            "floodgate_queue_finished_total",
            Some(("outcome", "succeeded"))
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        counter("floodgate_queue_lease_lost_total", None),
        Some(&DebugValue::Counter(1))
    );
}

#[test]
fn the_worker_counts_jobs_by_queue_kind_and_outcome() {
    use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker};
    use std::time::Duration;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime: the worker's tasks record on this thread's recorder.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let store = SqliteStore::in_memory().await.unwrap();
            let handle = Worker::builder(store.clone())
                .handler("ok", KindOptions::new(), |_, _| async {
                    Ok(Outcome::done())
                })
                .handler("bad", KindOptions::new(), |_, _| async {
                    Err(JobError::permanent("no"))
                })
                .build()
                .unwrap()
                .start();
            let ok = store.enqueue(NewJob::new("ok", json!(1))).await.unwrap().id;
            let bad = store
                .enqueue(NewJob::new("bad", json!(1)))
                .await
                .unwrap()
                .id;
            for id in [ok, bad] {
                while !store.job(id).await.unwrap().unwrap().state.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            handle.shutdown(Duration::from_secs(5)).await;
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        counter(
            "floodgate_jobs_started_total",
            &[("queue", "default"), ("kind", "ok")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        counter(
            "floodgate_jobs_finished_total",
            &[("kind", "ok"), ("outcome", "succeeded")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        counter(
            "floodgate_jobs_finished_total",
            &[("kind", "bad"), ("outcome", "dead")]
        ),
        Some(&DebugValue::Counter(1))
    );
}
