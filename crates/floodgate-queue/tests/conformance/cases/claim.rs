//! Claims: their order, what they leave alone, the lease they take, and ordering keys.

use std::time::Duration;

use chrono::Utc;
use floodgate_queue::{Claim, JobState, Store};

use super::{claim, claim_and_let_expire, claim_one, get, in_an_hour, job};

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

/// Regression (issue 12, case 6): a job retried from dead or cancelled once ran beside a
/// younger job of its ordering key. "One at a time, in order" holds on every path: a retried
/// job goes to the back of its key's line; rescued and snoozed jobs keep their place.
pub async fn ordering_key_holds_through_retry_rescue_and_snooze<S: Store>(store: &S) {
    // Retried from dead while a younger job of the key runs.
    let a = store
        .enqueue(job("k", 1).ordering_key("dead").max_attempts(1))
        .await
        .unwrap();
    let b = store
        .enqueue(job("k", 2).ordering_key("dead"))
        .await
        .unwrap();
    let (head, lease) = claim_one(store, "w").await;
    assert_eq!(head.id, a.id);
    store.dead(lease, "bad").await.unwrap();
    let (next, b_lease) = claim_one(store, "w").await;
    assert_eq!(next.id, b.id);
    store.retry_dead(a.id).await.unwrap();
    assert!(
        claim(store, "w", 10).await.is_empty(),
        "the retried job must wait for the running one"
    );
    store.complete(b_lease, None).await.unwrap();
    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(next.id, a.id);
    store.complete(lease, None).await.unwrap();

    // Cancelled while pending, retried while a younger job of the key runs.
    let c = store
        .enqueue(job("k", 3).ordering_key("cancel"))
        .await
        .unwrap();
    let d = store
        .enqueue(job("k", 4).ordering_key("cancel"))
        .await
        .unwrap();
    store.cancel(c.id).await.unwrap();
    let (next, d_lease) = claim_one(store, "w").await;
    assert_eq!(next.id, d.id);
    store.retry_dead(c.id).await.unwrap();
    assert!(claim(store, "w", 10).await.is_empty(), "c waits for d");
    // Retried behind a job enqueued before the retry, ahead of one enqueued after.
    let e = store
        .enqueue(job("k", 5).ordering_key("cancel"))
        .await
        .unwrap();
    store.complete(d_lease, None).await.unwrap();
    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(
        next.id, c.id,
        "the retried job is ahead of one enqueued after the retry"
    );
    assert!(claim(store, "w", 10).await.is_empty(), "e waits for c");
    store.complete(lease, None).await.unwrap();
    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(next.id, e.id);
    store.complete(lease, None).await.unwrap();

    // Every dead job of the queue retried at once, while a younger job of the key runs.
    let f = store
        .enqueue(job("k", 6).ordering_key("all").max_attempts(1))
        .await
        .unwrap();
    let g = store
        .enqueue(job("k", 7).ordering_key("all"))
        .await
        .unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.dead(lease, "bad").await.unwrap();
    let (next, g_lease) = claim_one(store, "w").await;
    assert_eq!(next.id, g.id);
    assert_eq!(store.retry_dead_all("default", None).await.unwrap(), 1);
    assert!(claim(store, "w", 10).await.is_empty(), "f waits for g");
    store.complete(g_lease, None).await.unwrap();
    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(next.id, f.id);
    store.complete(lease, None).await.unwrap();

    // A rescued head keeps its place: the younger job still waits.
    let h = store
        .enqueue(job("k", 8).ordering_key("rescue"))
        .await
        .unwrap();
    store
        .enqueue(job("k", 9).ordering_key("rescue"))
        .await
        .unwrap();
    let (expired, _) = claim_and_let_expire(store, "crashed").await;
    assert_eq!(expired.id, h.id);
    assert_eq!(store.rescue_expired(100).await.unwrap().len(), 1);
    let (next, lease) = claim_one(store, "w").await;
    assert_eq!(next.id, h.id, "the rescued head runs first");
    // A snoozed head keeps its place too.
    store.snooze(lease, in_an_hour()).await.unwrap();
    assert!(
        claim(store, "w", 10).await.is_empty(),
        "the younger job waits for the snoozed head"
    );
}

pub async fn claim_skips_the_named_groups_and_takes_them_later<S: Store>(store: &S) {
    // Two full claims first, so a backend that continues from where the last claim ended has
    // a place to continue from: a claim that skips groups must not use it or leave one.
    for n in 0..4 {
        store.enqueue(job("k", n)).await.unwrap();
    }
    assert_eq!(claim(store, "w", 2).await.len(), 2);
    assert_eq!(claim(store, "w", 2).await.len(), 2);

    let down: Vec<_> = enqueue_group(store, "down", 3).await;
    let up: Vec<_> = enqueue_group(store, "up", 2).await;
    let plain = store.enqueue(job("k", 99)).await.unwrap().id;
    let other = store
        .enqueue(job("k", 100).group("down").queue("mail"))
        .await
        .unwrap();
    assert_eq!(get(store, down[0]).await.group(), Some("down"));

    let taken = store
        .claim(&Claim::new("w", 10).skip_groups(["down", "elsewhere"]))
        .await
        .unwrap();
    let mut ids: Vec<_> = taken.iter().map(|j| j.id).collect();
    ids.sort();
    let mut want = up.clone();
    want.push(plain);
    assert_eq!(
        ids, want,
        "the skipped group's jobs stay, the others are taken"
    );
    for id in &down {
        let j = get(store, *id).await;
        assert_eq!((j.state, j.attempt), (JobState::Pending, 0), "untouched");
    }

    // Several queues, one kind under a cluster-wide cap: the same rule.
    let capped = store
        .claim(
            &Claim::new("w", 10)
                .queues(["mail", "default"])
                .kinds(["k"])
                .cluster_limit(100)
                .skip_groups(["down"]),
        )
        .await
        .unwrap();
    assert!(capped.is_empty(), "only skipped jobs are left: {capped:?}");

    // Once no longer skipped, the group's jobs are claimed, oldest first.
    let later: Vec<_> = claim(store, "w", 10).await.iter().map(|j| j.id).collect();
    assert_eq!(later, down);
    let mail = store
        .claim(&Claim::new("w", 10).queues(["mail"]))
        .await
        .unwrap();
    assert_eq!(mail.iter().map(|j| j.id).collect::<Vec<_>>(), [other.id]);

    let too_many = Claim::new("w", 1).skip_groups((0..10_001).map(|i| i.to_string()));
    assert!(store.claim(&too_many).await.is_err(), "bounded");
}

/// Enqueues `n` jobs in `group`, returning their ids in order.
async fn enqueue_group<S: Store>(store: &S, group: &str, n: i64) -> Vec<floodgate_queue::JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(store.enqueue(job("k", i).group(group)).await.unwrap().id);
    }
    ids
}
