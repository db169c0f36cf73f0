use std::time::Duration;

use chrono::Utc;
use floodgate_queue::{Claim, JobState, Store};

use super::{claim, claim_one, get, in_an_hour, job};

pub async fn claim_takes_highest_priority_then_oldest_run_at_then_id<S: Store>(store: &S) {
    let now = Utc::now();
    let ago = |s: i64| now - chrono::Duration::seconds(s);
    let a = store
        .enqueue(job("k", 1).priority(5).run_at(ago(10)))
        .await
        .unwrap();
    let b = store
        .enqueue(job("k", 2).priority(9).run_at(ago(5)))
        .await
        .unwrap();
    let c = store
        .enqueue(job("k", 3).priority(5).run_at(ago(20)))
        .await
        .unwrap();
    let d = store
        .enqueue(job("k", 4).priority(9).run_at(ago(5)))
        .await
        .unwrap();
    let e = store
        .enqueue(job("k", 5).priority(1).run_at(ago(100)))
        .await
        .unwrap();
    let f = store
        .enqueue(job("k", 6).priority(10).run_at(ago(1)))
        .await
        .unwrap();

    let first = claim(store, "w", 3).await;
    let ids: Vec<_> = first.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        [f.id, b.id, d.id],
        "priority first, then run_at, then id"
    );
    let rest: Vec<_> = claim(store, "w", 10).await.iter().map(|j| j.id).collect();
    assert_eq!(rest, [c.id, a.id, e.id]);
    assert!(claim(store, "w", 10).await.is_empty());
}

pub async fn claim_leaves_future_other_queue_and_other_kind_jobs<S: Store>(store: &S) {
    let future = store
        .enqueue(job("k", 1).run_at(in_an_hour()))
        .await
        .unwrap();
    let mail = store.enqueue(job("k", 2).queue("mail")).await.unwrap();
    let report = store.enqueue(job("report", 3)).await.unwrap();
    let email = store.enqueue(job("email", 4)).await.unwrap();

    let only_email = store
        .claim(&Claim::new("w", 10).kinds(["email"]))
        .await
        .unwrap();
    assert_eq!(only_email.len(), 1);
    assert_eq!(only_email[0].id, email.id);

    let rest: Vec<_> = claim(store, "w", 10).await.iter().map(|j| j.id).collect();
    assert_eq!(rest, [report.id], "future and other-queue jobs stay");

    let both = store
        .claim(&Claim::new("w", 10).queues(["mail", "default"]))
        .await
        .unwrap();
    assert_eq!(both.iter().map(|j| j.id).collect::<Vec<_>>(), [mail.id]);
    assert_eq!(get(store, future.id).await.state, JobState::Pending);
}

pub async fn claim_leases_the_job<S: Store>(store: &S) {
    let enqueued = store.enqueue(job("k", 1)).await.unwrap();
    let before = Utc::now() - chrono::Duration::seconds(1);
    let jobs = store
        .claim(&Claim::new("worker-a", 5).lease_ttl(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let claimed = &jobs[0];
    assert_eq!(claimed.id, enqueued.id);
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("worker-a"));
    let expires = claimed.lease_expires_at.expect("a lease expiry");
    assert!(
        expires > before + chrono::Duration::seconds(110),
        "{expires}"
    );
    assert!(
        expires < Utc::now() + chrono::Duration::seconds(130),
        "{expires}"
    );
    let stored = get(store, enqueued.id).await;
    assert_eq!(stored.lease_token, claimed.lease_token);
    assert_eq!(stored.state, JobState::Running);

    // A new claim of the same job (after a rescue) gets a different token.
    let other = store.enqueue(job("k", 2)).await.unwrap();
    let (_, l1) = claim_one(store, "w").await;
    assert_eq!(l1.id, other.id);
    assert_ne!(Some(l1.token), claimed.lease_token);
}

pub async fn ordering_key_lets_only_the_oldest_unfinished_job_run<S: Store>(store: &S) {
    let k1 = store
        .enqueue(job("k", 1).ordering_key("acct-1"))
        .await
        .unwrap();
    let k2 = store
        .enqueue(job("k", 2).ordering_key("acct-1").priority(10))
        .await
        .unwrap();
    let k3 = store
        .enqueue(job("k", 3).ordering_key("acct-1"))
        .await
        .unwrap();
    let free = store.enqueue(job("k", 4)).await.unwrap();
    let other_key = store
        .enqueue(job("k", 5).ordering_key("acct-2"))
        .await
        .unwrap();
    // Ordering keys are per queue: the same key elsewhere does not block.
    let elsewhere = store
        .enqueue(job("k", 6).ordering_key("acct-1").queue("q2"))
        .await
        .unwrap();

    let mut ids: Vec<_> = claim(store, "w", 10).await.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, [k1.id, free.id, other_key.id], "k2 and k3 wait for k1");
    assert!(
        claim(store, "w", 10).await.is_empty(),
        "k1 running still blocks k2"
    );

    let k1_lease = get(store, k1.id).await.lease().unwrap();
    // A failed head waiting for its retry keeps blocking.
    store.fail(k1_lease, "boom", in_an_hour()).await.unwrap();
    assert!(
        claim(store, "w", 10).await.is_empty(),
        "k1 failed-and-waiting blocks k2"
    );
    store.cancel(k1.id).await.unwrap();

    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(next.id, k2.id);
    store.complete(lease, None).await.unwrap();
    let (next, _) = claim_one(store, "w").await;
    assert_eq!(next.id, k3.id);

    let q2 = store
        .claim(&Claim::new("w", 10).queues(["q2"]))
        .await
        .unwrap();
    assert_eq!(q2[0].id, elsewhere.id);
}
