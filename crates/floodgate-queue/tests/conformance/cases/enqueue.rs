//! Enqueueing: defaults, batches in input order, validation, idempotency keys (alone and
//! under concurrent enqueues), and the outbox (`enqueue_in`).

use std::collections::HashSet;
use std::sync::Arc;

use floodgate_queue::{Claim, JobState, ListJobs, NewJob, OutboxStore, Store, StoreError};
use serde_json::json;

use super::{claim, get, job};

pub async fn enqueue_stores_the_job_with_defaults<S: Store>(store: &S) {
    let enqueued = store
        .enqueue(NewJob::new("send_email", json!({"to": "ada"})).metadata(json!({"trace": "t1"})))
        .await
        .unwrap();
    assert!(enqueued.inserted);
    let job = get(store, enqueued.id).await;
    assert_eq!(job.id, enqueued.id);
    assert_eq!(job.queue, "default");
    assert_eq!(job.kind, "send_email");
    assert_eq!(job.payload, json!({"to": "ada"}));
    assert_eq!(job.priority, 5);
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.max_attempts, 25);
    assert_eq!(job.lease_token, None);
    assert_eq!(job.finished_at, None);
    assert_eq!(job.metadata, json!({"trace": "t1"}));
    assert!(job.run_at <= chrono::Utc::now() + chrono::Duration::seconds(1));
    assert!(
        store
            .job(floodgate_queue::JobId(enqueued.id.0 + 1_000))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn enqueue_many_returns_ids_in_input_order<S: Store>(store: &S) {
    let jobs: Vec<NewJob> = (0..10_000).map(|n| job("bulk", n)).collect();
    let out = store.enqueue_many(jobs).await.unwrap();
    assert_eq!(out.len(), 10_000);
    assert!(out.iter().all(|e| e.inserted));
    assert!(
        out.windows(2).all(|w| w[0].id < w[1].id),
        "ids rise in input order"
    );
    for n in [0usize, 1, 4_999, 9_999] {
        assert_eq!(get(store, out[n].id).await.payload, json!({ "n": n }));
    }
    assert!(store.enqueue_many(Vec::new()).await.unwrap().is_empty());
}

fn invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, field: &str) {
    match r {
        Err(StoreError::Invalid { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Invalid {{ field: {field} }}, got {other:?}"),
    }
}

pub async fn bad_input_is_rejected_and_nothing_is_written<S: Store>(store: &S) {
    invalid(store.enqueue(job("k", 1).priority(0)).await, "priority");
    invalid(store.enqueue(job("k", 1).priority(11)).await, "priority");
    invalid(store.enqueue(job("", 1)).await, "kind");
    invalid(store.enqueue(job("k", 1).queue("")).await, "queue");
    invalid(
        store.enqueue(job("k", 1).max_attempts(0)).await,
        "max_attempts",
    );
    invalid(
        store
            .enqueue(job("k", 1).idempotency_key("x".repeat(300)))
            .await,
        "idempotency_key",
    );
    invalid(
        store.enqueue(job("k", 1).metadata(json!([1]))).await,
        "metadata",
    );
    // One bad job rejects the whole batch.
    invalid(
        store
            .enqueue_many(vec![job("k", 1), job("k", 2).priority(42)])
            .await,
        "priority",
    );
    invalid(store.claim(&Claim::new("w", 0)).await, "limit");
    invalid(
        store
            .claim(&Claim::new("w", 1).kinds(["a", "b"]).cluster_limit(1))
            .await,
        "cluster_limit",
    );
    invalid(
        store
            .claim(&Claim::new("w", 1).queues(Vec::<String>::new()))
            .await,
        "queues",
    );
    invalid(
        store
            .claim(&Claim::new("w", 1).lease_ttl(std::time::Duration::ZERO))
            .await,
        "lease_ttl",
    );
    invalid(
        store
            .list(&ListJobs {
                limit: 5_000,
                ..Default::default()
            })
            .await,
        "limit",
    );
    let page = store.list(&ListJobs::default()).await.unwrap();
    assert!(page.jobs.is_empty(), "nothing was written: {:?}", page.jobs);
}

pub async fn enqueue_in_exists_only_if_the_transaction_commits<S: OutboxStore>(store: &S) {
    let mut tx = store.begin().await.unwrap();
    let committed = store.enqueue_in(&mut tx, job("outbox", 1)).await.unwrap();
    let many = store
        .enqueue_many_in(&mut tx, vec![job("outbox", 2), job("outbox", 3)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let rolled_back = store.enqueue_in(&mut tx, job("outbox", 4)).await.unwrap();
    tx.rollback().await.unwrap();

    // Dropped without commit: rolled back as well.
    {
        let mut tx = store.begin().await.unwrap();
        store.enqueue_in(&mut tx, job("outbox", 5)).await.unwrap();
    }

    assert!(store.job(committed.id).await.unwrap().is_some());
    assert!(store.job(many[1].id).await.unwrap().is_some());
    assert!(store.job(rolled_back.id).await.unwrap().is_none());
    let claimed: Vec<i64> = claim(store, "w", 10)
        .await
        .iter()
        .map(|j| j.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(claimed, [1, 2, 3], "only the committed jobs exist");
}

pub async fn duplicate_idempotency_key_returns_the_existing_job<S: Store>(store: &S) {
    let first = store
        .enqueue(job("charge", 1).idempotency_key("order-7"))
        .await
        .unwrap();
    let again = store
        .enqueue(job("charge", 2).idempotency_key("order-7"))
        .await
        .unwrap();
    assert!(first.inserted);
    assert!(!again.inserted);
    assert_eq!(again.id, first.id);
    assert_eq!(
        get(store, first.id).await.payload,
        json!({"n": 1}),
        "first one kept"
    );

    // Unique per queue: the same key in another queue is another job.
    let other_queue = store
        .enqueue(job("charge", 3).queue("other").idempotency_key("order-7"))
        .await
        .unwrap();
    assert!(other_queue.inserted);
    assert_ne!(other_queue.id, first.id);

    // In a batch: an existing key, a key repeated inside the batch, and keyless jobs.
    let out = store
        .enqueue_many(vec![
            job("charge", 4),
            job("charge", 5).idempotency_key("order-7"),
            job("charge", 6).idempotency_key("order-8"),
            job("charge", 7).idempotency_key("order-8"),
            job("charge", 8),
        ])
        .await
        .unwrap();
    assert!(out[0].inserted && out[2].inserted && out[4].inserted);
    assert!(!out[1].inserted && !out[3].inserted);
    assert_eq!(out[1].id, first.id);
    assert_eq!(out[3].id, out[2].id);
    assert_eq!(get(store, out[2].id).await.payload, json!({"n": 6}));
    assert_eq!(get(store, out[4].id).await.payload, json!({"n": 8}));
    let ids: HashSet<_> = out.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4);
}

pub async fn idempotency_key_holds_under_50_concurrent_enqueues<S: Store + Clone>(store: &S) {
    let store = Arc::new(store.clone());
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue(job("charge", n).idempotency_key("payment-42"))
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("a duplicate is not an error"));
    }
    assert_eq!(results.iter().filter(|r| r.inserted).count(), 1);
    let ids: HashSet<_> = results.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 1, "every caller got the one job's id");
    let page = store.list(&ListJobs::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 1, "one row");
}
