//! The store's and the worker's counters carry their labels (store name, queue, kind,
//! outcome).

use std::time::Duration;

use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker};
use floodgate_queue::{Claim, JobState, LeaseToken, NewJob, SqliteStore, Store};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One snapshot's series.
type Series = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;
use serde_json::json;

/// The count of the counter `name` carrying all of `labels`.
fn value(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    series
        .iter()
        .find(|(key, ..)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .and_then(|(_, _, _, v)| match v {
            DebugValue::Counter(n) => Some(*n),
            _ => None,
        })
}

/// Runs `f` on a current-thread runtime under a local recorder (everything it runs, the
/// worker's tasks included, records there) and takes one snapshot (taking one resets the
/// counters).
fn recorded(f: impl std::future::Future<Output = ()>) -> Series {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || rt.block_on(f));
    snapshotter.snapshot().into_vec()
}

#[test]
fn store_counters_are_labelled_with_the_store_name() {
    let metrics = recorded(async {
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
    });
    let counter = |name, extra: &[(&str, &str)]| {
        let mut labels = vec![("store", "orders")];
        labels.extend_from_slice(extra);
        value(&metrics, name, &labels)
    };
    let n = Some;
    assert_eq!(
        counter("floodgate_queue_enqueued_total", &[("queue", "mail")]),
        n(2)
    );
    assert_eq!(
        counter("floodgate_queue_duplicates_total", &[("queue", "mail")]),
        n(1)
    );
    assert_eq!(counter("floodgate_queue_claimed_total", &[]), n(2));
    assert_eq!(
        counter(
            "floodgate_queue_finished_total",
            &[("outcome", "succeeded")]
        ),
        n(1)
    );
    assert_eq!(counter("floodgate_queue_lease_lost_total", &[]), n(1));
}

#[test]
fn the_worker_counts_jobs_by_queue_kind_and_outcome() {
    let metrics = recorded(async {
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
        crate::support::eventually(&store, ok, JobState::Succeeded).await;
        crate::support::eventually(&store, bad, JobState::Dead).await;
        handle.shutdown(Duration::from_secs(5)).await;
    });
    let n = Some;
    assert_eq!(
        value(
            &metrics,
            "floodgate_jobs_started_total",
            &[("queue", "default"), ("kind", "ok")]
        ),
        n(1)
    );
    assert_eq!(
        value(
            &metrics,
            "floodgate_jobs_finished_total",
            &[("kind", "ok"), ("outcome", "succeeded")]
        ),
        n(1)
    );
    assert_eq!(
        value(
            &metrics,
            "floodgate_jobs_finished_total",
            &[("kind", "bad"), ("outcome", "dead")]
        ),
        n(1)
    );
}
