//! Leases and completion: fencing by the lease token, heartbeats, batch completion, failures
//! and retries, dead letters, snoozes and the rescue of expired leases.

use std::time::Duration;

use chrono::Utc;
use floodgate_queue::{
    Claim, Completion, JobState, Lease, LeaseStatus, LeaseToken, Store, StoreError,
};
use serde_json::json;

use super::{claim, claim_and_let_expire, claim_one, get, in_an_hour, job};

fn assert_lost<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

pub async fn a_stale_lease_token_cannot_finish_the_job<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1)).await.unwrap();
    let (_, stale) = claim_and_let_expire(store, "worker-a").await;
    assert_eq!(store.rescue_expired(100).await.unwrap().len(), 1);
    let (_, fresh) = claim_one(store, "worker-b").await;
    let before = get(store, e.id).await;

    assert_lost(store.complete(stale, Some(json!("late"))).await);
    assert_lost(store.fail(stale, "late", Utc::now()).await);
    assert_lost(store.dead(stale, "late").await);
    assert_lost(store.snooze(stale, Utc::now()).await);
    let forged = Lease {
        id: e.id,
        token: LeaseToken(fresh.token.0.wrapping_add(1)),
    };
    assert_lost(store.complete(forged, None).await);
    assert_eq!(get(store, e.id).await, before, "nothing changed");

    store
        .complete(fresh, Some(json!({"ok": true})))
        .await
        .unwrap();
    let done = get(store, e.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.finished_at.is_some());
    assert_eq!(done.lease_token, None);
    // A finished job cannot be finished again, even with the token that finished it.
    assert_lost(store.complete(fresh, None).await);
}

pub async fn heartbeat_extends_held_leases_and_reports_lost_and_cancelled<S: Store>(store: &S) {
    for n in 0..3 {
        store.enqueue(job("k", n)).await.unwrap();
    }
    let jobs = store
        .claim(&Claim::new("w", 3).lease_ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let leases: Vec<Lease> = jobs.iter().map(|j| j.lease().unwrap()).collect();
    store.cancel(leases[1].id).await.unwrap();
    store.complete(leases[2], None).await.unwrap();
    let stale = Lease {
        id: leases[0].id,
        token: LeaseToken(leases[0].token.0 ^ 1),
    };

    let statuses = store
        .extend_leases(
            "w",
            &[leases[0], leases[1], leases[2], stale],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert_eq!(
        statuses,
        [
            LeaseStatus::Extended,
            LeaseStatus::CancelRequested,
            LeaseStatus::Lost,
            LeaseStatus::Lost
        ]
    );
    let extended = get(store, leases[0].id).await.lease_expires_at.unwrap();
    assert!(
        extended > Utc::now() + chrono::Duration::seconds(500),
        "{extended}"
    );
    // Another worker id cannot extend the lease.
    let other = store
        .extend_leases("intruder", &[leases[0]], Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(other, [LeaseStatus::Lost]);
    // A name a claim would refuse is refused here too, naming it.
    for bad in ["", "a\0b"] {
        let err = store
            .extend_leases(bad, &[leases[0]], Duration::from_secs(600))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                floodgate_queue::StoreError::Invalid {
                    field: "worker_id",
                    ..
                }
            ),
            "{err}"
        );
    }
    assert!(
        store
            .extend_leases("w", &[], Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn complete_many_reports_lost_leases_and_completes_the_rest<S: Store>(store: &S) {
    for n in 0..5 {
        store.enqueue(job("k", n)).await.unwrap();
    }
    let jobs = claim(store, "w", 5).await;
    let mut completions: Vec<Completion> = jobs
        .iter()
        .map(|j| Completion {
            lease: j.lease().unwrap(),
            result: Some(json!({"n": j.payload["n"]})),
        })
        .collect();
    completions[3].lease.token = LeaseToken(completions[3].lease.token.0 ^ 1);
    let lost = store.complete_many(completions.clone()).await.unwrap();
    assert_eq!(lost, [jobs[3].id]);
    for (i, j) in jobs.iter().enumerate() {
        let stored = get(store, j.id).await;
        if i == 3 {
            assert_eq!(stored.state, JobState::Running);
        } else {
            assert_eq!(stored.state, JobState::Succeeded);
            assert_eq!(stored.result, Some(json!({"n": j.payload["n"]})));
        }
    }
    assert!(store.complete_many(Vec::new()).await.unwrap().is_empty());
}

pub async fn failed_attempts_retry_then_go_dead<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1).max_attempts(2)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    let state = store.fail(lease, "first error", Utc::now()).await.unwrap();
    assert_eq!(state, JobState::Failed);
    let failed = get(store, e.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("first error"));
    assert_eq!(failed.lease_token, None);
    assert_eq!(failed.finished_at, None);

    let (again, lease) = claim_one(store, "w").await;
    assert_eq!(again.attempt, 2);
    let state = store.fail(lease, "second error", Utc::now()).await.unwrap();
    assert_eq!(state, JobState::Dead);
    let dead = get(store, e.id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("second error"));
    assert!(dead.finished_at.is_some());
    assert!(claim(store, "w", 10).await.is_empty());
}

pub async fn a_future_retry_is_not_claimed_early<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    let at = in_an_hour();
    store.fail(lease, "later", at).await.unwrap();
    assert!(claim(store, "w", 10).await.is_empty());
    let stored = get(store, e.id).await;
    assert_eq!(stored.state, JobState::Failed);
    assert!(
        (stored.run_at - at).num_milliseconds().abs() < 5,
        "{} vs {at}",
        stored.run_at
    );
}

pub async fn dead_skips_the_remaining_attempts<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.dead(lease, "invalid card").await.unwrap();
    let dead = get(store, e.id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempt, 1);
    assert_eq!(dead.last_error.as_deref(), Some("invalid card"));
}

pub async fn snooze_gives_the_attempt_back<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.snooze(lease, in_an_hour()).await.unwrap();
    let snoozed = get(store, e.id).await;
    assert_eq!(snoozed.state, JobState::Pending);
    assert_eq!(snoozed.attempt, 0);
    assert!(claim(store, "w", 1).await.is_empty(), "not before `until`");

    let e2 = store.enqueue(job("k", 2)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.snooze(lease, Utc::now()).await.unwrap();
    let (again, _) = claim_one(store, "w").await;
    assert_eq!(again.id, e2.id);
    assert_eq!(again.attempt, 1, "the snoozed attempt was not spent");
}

pub async fn rescue_returns_expired_leases_and_records_the_takeover<S: Store>(store: &S) {
    let healthy = store.enqueue(job("k", 0)).await.unwrap();
    let _ = store
        .claim(&Claim::new("alive", 1).lease_ttl(Duration::from_secs(600)))
        .await
        .unwrap();

    let retryable = store.enqueue(job("k", 1)).await.unwrap();
    let (_, _) = claim_and_let_expire(store, "crashed-1").await;
    let exhausted = store.enqueue(job("k", 2).max_attempts(1)).await.unwrap();
    let (_, _) = claim_and_let_expire(store, "crashed-2").await;
    let cancelled = store.enqueue(job("k", 3)).await.unwrap();
    let (_, _) = claim_and_let_expire(store, "crashed-3").await;
    store.cancel(cancelled.id).await.unwrap();

    let mut rescued = store.rescue_expired(100).await.unwrap();
    rescued.sort_by_key(|r| r.id);
    let summary: Vec<_> = rescued
        .iter()
        .map(|r| (r.id, r.previous_owner.as_deref(), r.state))
        .collect();
    assert_eq!(
        summary,
        [
            (retryable.id, Some("crashed-1"), JobState::Pending),
            (exhausted.id, Some("crashed-2"), JobState::Dead),
            (cancelled.id, Some("crashed-3"), JobState::Cancelled),
        ]
    );
    let r = get(store, retryable.id).await;
    assert_eq!(r.metadata["rescues"], json!(1));
    assert_eq!(r.metadata["last_rescue"]["worker"], json!("crashed-1"));
    assert_eq!(r.lease_token, None);
    let dead = get(store, exhausted.id).await;
    assert!(dead.last_error.unwrap().contains("lease expired"));
    assert_eq!(
        get(store, healthy.id).await.state,
        JobState::Running,
        "live lease kept"
    );
    assert!(store.rescue_expired(100).await.unwrap().is_empty());

    let (again, _) = claim_one(store, "w").await;
    assert_eq!(again.id, retryable.id);
    assert_eq!(again.attempt, 2, "the crashed attempt counts");
}

/// `record_attempt` appends to `metadata.attempts` while the lease holds, and changes nothing
/// once it is lost.
pub async fn record_attempt_appends_under_the_lease<S: Store>(store: &S) {
    store
        .enqueue(job("k", 1).metadata(json!({"tenant": "acme"})))
        .await
        .unwrap();
    let (claimed, lease) = claim_one(store, "w").await;
    store
        .record_attempt(lease, json!({"status": 500, "duration_ms": 12}))
        .await
        .unwrap();
    store
        .record_attempt(lease, json!({"error": "connection refused"}))
        .await
        .unwrap();
    let job = get(store, claimed.id).await;
    assert_eq!(
        job.metadata["tenant"], "acme",
        "the rest of the metadata is kept"
    );
    assert_eq!(
        job.metadata["attempts"],
        json!([{"status": 500, "duration_ms": 12}, {"error": "connection refused"}])
    );
    let not_an_object = store.record_attempt(lease, json!([1])).await;
    assert!(matches!(not_an_object, Err(StoreError::Invalid { .. })));
    let forged = Lease {
        id: claimed.id,
        token: LeaseToken(lease.token.0.wrapping_add(1)),
    };
    let lost = store.record_attempt(forged, json!({"late": true})).await;
    assert!(
        matches!(lost, Err(StoreError::LeaseLost { .. })),
        "{lost:?}"
    );
    store.complete(lease, None).await.unwrap();
    assert!(
        store
            .record_attempt(lease, json!({"after": true}))
            .await
            .is_err()
    );
    assert_eq!(
        get(store, claimed.id).await.metadata["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
