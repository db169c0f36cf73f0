//! Maintenance run by the leader: rescue, retention, and periodic jobs that survive a
//! failover without duplicates or gaps.

use std::time::Duration;

use floodgate_queue::maintenance::{Maintenance, Periodic};
use floodgate_queue::{Claim, JobState, NewJob, Retention, Singleton, Store};
use serde_json::json;

crate::support::backends!(the_leader_rescues_and_cleans);

async fn the_leader_rescues_and_cleans<S: Store + Clone>(store: &S) {
    let stuck = store.enqueue(NewJob::new("k", json!(1))).await.unwrap().id;
    store
        .claim(&Claim::new("dead-worker", 1).lease_ttl(Duration::from_millis(20)))
        .await
        .unwrap();
    let done = store.enqueue(NewJob::new("k", json!(2))).await.unwrap().id;
    let jobs = store.claim(&Claim::new("w", 1)).await.unwrap();
    store
        .complete(jobs[0].lease().unwrap(), None)
        .await
        .unwrap();

    let role = Singleton::lease(
        store.clone(),
        "maintenance",
        "node-1",
        Duration::from_secs(5),
    );
    let maintenance = Maintenance::new(store.clone())
        .rescue_every(Duration::from_millis(20))
        .retention(
            Retention {
                succeeded: Duration::ZERO,
                dead: Duration::ZERO,
                batch_size: 10,
            },
            Duration::from_millis(20),
        )
        .start(role);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rescued = store.job(stuck).await.unwrap().unwrap().state == JobState::Pending;
        let cleaned = store.job(done).await.unwrap().is_none();
        if rescued && cleaned {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rescued {rescued}, cleaned {cleaned}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    maintenance.stop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_jobs_survive_failover_without_duplicates_or_gaps() {
    let harness = crate::support::sqlite().await;
    let store = &harness.store;
    let every_second =
        || Periodic::new("tick", "* * * * * *", NewJob::new("tick", json!({}))).unwrap();
    let ttl = Duration::from_millis(400);
    let node = |name: &str| {
        let role = Singleton::lease(store.clone(), "maintenance", name, ttl);
        Maintenance::new(store.clone())
            .periodic(every_second())
            .catch_up(Duration::from_secs(3))
            .start(role)
    };
    let a = node("node-a");
    let b = node("node-b");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // Whichever leads dies: stopping both and starting one again stands for a failover (the
    // new leader starts with nothing but the store).
    a.stop().await;
    b.stop().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await; // nobody leads for over a second
    let c = node("node-c");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    c.stop().await;

    let jobs = store
        .list(&floodgate_queue::ListJobs {
            kind: Some("tick".into()),
            limit: 1_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    let seconds: Vec<i64> = jobs.iter().map(|j| j.run_at.timestamp()).collect();
    let distinct: std::collections::BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seconds.len(),
        "no occurrence enqueued twice: {seconds:?}"
    );
    let first = *distinct.first().unwrap();
    let last = *distinct.last().unwrap();
    assert!(last - first >= 5, "ran for about 6 s: {distinct:?}");
    assert_eq!(
        distinct.len() as i64,
        last - first + 1,
        "every second from the first to the last, the leaderless one included: {distinct:?}"
    );
}

#[test]
fn a_bad_cron_expression_is_a_clear_error() {
    let err = Periodic::new("x", "every tuesday", NewJob::new("k", json!(1))).unwrap_err();
    assert!(err.to_string().contains("not a cron expression"), "{err}");
}
