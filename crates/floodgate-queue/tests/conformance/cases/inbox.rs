//! The inbox's building blocks: `inbox_record` (inside the caller's transaction) and
//! `inbox_delete_older_than`.

use std::time::Duration;

use floodgate_queue::{OutboxStore, StoreError};

/// Records `(consumer, key)` in a transaction of its own that commits; the result.
async fn record<S: OutboxStore>(store: &S, consumer: &str, key: &str) -> bool {
    let mut tx = store.begin().await.unwrap();
    let first = store.inbox_record(&mut tx, consumer, key).await.unwrap();
    tx.commit().await.unwrap();
    first
}

pub async fn inbox_record_is_true_once_per_consumer_and_key<S: OutboxStore>(store: &S) {
    assert!(record(store, "billing", "msg-1").await, "the first time");
    assert!(!record(store, "billing", "msg-1").await, "a duplicate");
    assert!(record(store, "billing", "msg-2").await, "another key");
    assert!(record(store, "shipping", "msg-1").await, "another consumer");

    // Within one transaction, the second record of a key is already a duplicate.
    let mut tx = store.begin().await.unwrap();
    assert!(
        store
            .inbox_record(&mut tx, "billing", "msg-3")
            .await
            .unwrap()
    );
    assert!(
        !store
            .inbox_record(&mut tx, "billing", "msg-3")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

pub async fn an_inbox_record_rolled_back_is_not_kept<S: OutboxStore>(store: &S) {
    let mut tx = store.begin().await.unwrap();
    assert!(
        store
            .inbox_record(&mut tx, "billing", "msg-1")
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
    assert!(
        record(store, "billing", "msg-1").await,
        "the key went with the rolled-back transaction"
    );
}

pub async fn a_concurrent_inbox_record_waits_and_sees_a_duplicate<S: OutboxStore>(store: &S) {
    let mut first = store.begin().await.unwrap();
    assert!(
        store
            .inbox_record(&mut first, "billing", "msg-1")
            .await
            .unwrap()
    );
    let second = async {
        // Waits for `first` (for the writer on SQLite, for the key's row on PostgreSQL).
        let mut tx = store.begin().await.unwrap();
        let recorded = store
            .inbox_record(&mut tx, "billing", "msg-1")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        recorded
    };
    let commit_first = async {
        // Give `second` time to start waiting; the outcome is the same if it has not.
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.commit().await.unwrap();
    };
    let (recorded, ()) = tokio::join!(second, commit_first);
    assert!(!recorded, "the second transaction sees the first one's key");
}

pub async fn inbox_record_refuses_empty_names<S: OutboxStore>(store: &S) {
    let mut tx = store.begin().await.unwrap();
    for (consumer, key, field) in [("", "k", "consumer"), ("c", "", "message_key")] {
        match store.inbox_record(&mut tx, consumer, key).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Invalid {{ field: {field} }}, got {other:?}"),
        }
    }
    tx.rollback().await.unwrap();
}

pub async fn inbox_delete_older_than_forgets_old_keys_in_batches<S: OutboxStore>(store: &S) {
    for n in 0..5 {
        assert!(record(store, "billing", &format!("msg-{n}")).await);
    }
    assert_eq!(
        store
            .inbox_delete_older_than(Duration::from_secs(3600), 2)
            .await
            .unwrap(),
        0,
        "nothing is an hour old"
    );
    assert_eq!(
        store
            .inbox_delete_older_than(Duration::ZERO, 2)
            .await
            .unwrap(),
        5,
        "every key, two a statement"
    );
    assert!(
        record(store, "billing", "msg-0").await,
        "a forgotten key counts as new"
    );
    // A batch size of 0 is taken as 1.
    assert_eq!(
        store
            .inbox_delete_older_than(Duration::ZERO, 0)
            .await
            .unwrap(),
        1
    );
}
