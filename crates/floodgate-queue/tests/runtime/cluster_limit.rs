//! A per-kind limit across all nodes: three workers (each with a store of its own, as on three
//! machines) never run more than two jobs of the kind at once between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use floodgate_queue::worker::{KindOptions, Outcome, Worker};
use floodgate_queue::{JobState, NewJob, Store};
use serde_json::json;

async fn three_workers_share_the_limit<S: Store + Clone>(stores: Vec<S>) {
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let (now, most) = (now.clone(), most.clone());
            Worker::builder(store.clone())
                .id(format!("node-{i}"))
                .concurrency(5)
                .poll_interval(Duration::from_millis(20))
                .handler("scarce", KindOptions::new().cluster_max(2), move |_, _| {
                    let (now, most) = (now.clone(), most.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(Outcome::done())
                    }
                })
                .build()
                .unwrap()
                .start()
        })
        .collect();
    let ids = stores[0]
        .enqueue_many((0..30).map(|n| NewJob::new("scarce", json!(n))).collect())
        .await
        .unwrap();
    for e in ids {
        crate::support::eventually(&stores[0], e.id, JobState::Succeeded).await;
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than 2 across the cluster, and 2 used"
    );
    for h in handles {
        h.shutdown(Duration::from_secs(5)).await;
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_cluster_limit_holds_across_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(floodgate_queue::SqliteStore::open(&path).await.unwrap());
    }
    three_workers_share_the_limit(stores).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cluster_limit_holds_across_three_workers() {
    let Some(schema) = floodgate_testing::postgres_schema("cluster_limit").await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(
            crate::support::pg_builder(&schema)
                .max_connections(4)
                .connect()
                .await
                .unwrap(),
        );
    }
    three_workers_share_the_limit(stores.clone()).await;
    for s in stores {
        s.close().await;
    }
}
