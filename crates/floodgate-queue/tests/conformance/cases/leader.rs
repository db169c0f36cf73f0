//! The leader role's building blocks: `leader_acquire` and `leader_release`.

use std::time::Duration;

use floodgate_queue::{Store, StoreError};

const LONG: Duration = Duration::from_secs(60);

pub async fn leader_acquire_takes_a_free_role_and_renews_it<S: Store>(store: &S) {
    assert!(
        store
            .leader_acquire("projector", "node-a", LONG)
            .await
            .unwrap()
    );
    assert!(
        store
            .leader_acquire("projector", "node-a", LONG)
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        !store
            .leader_acquire("projector", "node-b", LONG)
            .await
            .unwrap(),
        "held by another"
    );
    assert!(
        store
            .leader_acquire("maintenance", "node-b", LONG)
            .await
            .unwrap(),
        "roles are independent"
    );
}

pub async fn leader_release_frees_the_role_for_its_holder_only<S: Store>(store: &S) {
    assert!(
        store
            .leader_acquire("projector", "node-a", LONG)
            .await
            .unwrap()
    );
    store.leader_release("projector", "node-b").await.unwrap();
    assert!(
        !store
            .leader_acquire("projector", "node-b", LONG)
            .await
            .unwrap(),
        "a release by a non-holder changes nothing"
    );
    store.leader_release("projector", "node-a").await.unwrap();
    assert!(
        store
            .leader_acquire("projector", "node-b", LONG)
            .await
            .unwrap(),
        "free once its holder let go"
    );
    // Releasing a role nobody holds is not an error.
    store
        .leader_release("nobody-has-this", "node-a")
        .await
        .unwrap();
}

pub async fn an_expired_role_can_be_taken_by_another<S: Store>(store: &S) {
    assert!(
        store
            .leader_acquire("projector", "node-a", Duration::from_millis(50))
            .await
            .unwrap()
    );
    // The expiry is in the database's time: wait it out for real.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        store
            .leader_acquire("projector", "node-b", LONG)
            .await
            .unwrap()
    );
    assert!(
        !store
            .leader_acquire("projector", "node-a", LONG)
            .await
            .unwrap(),
        "the old holder lost it"
    );
}

pub async fn leader_acquire_refuses_empty_names<S: Store>(store: &S) {
    for (name, holder, field) in [("", "node-a", "name"), ("projector", "", "holder")] {
        match store.leader_acquire(name, holder, LONG).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Invalid {{ field: {field} }}, got {other:?}"),
        }
    }
}
