//! Held jobs (`Claim::hold`): claimed ahead by a worker, leased, not started. Readers report
//! them `pending`; a cancel ends one at once and its start then fails; a start makes it
//! `running`; a release gives back a job the worker did not run (held, or started and not
//! run) in its place with its attempt unspent; a rescue after a crash does the same for a
//! held job.

use std::time::Duration;

use floodgate_queue::{Claim, HeldStatus, JobState, ListJobs, Store};

use super::{get, job};

/// Lists `state` in the default queue: the ids.
async fn listed<S: Store>(store: &S, state: JobState) -> Vec<i64> {
    let list = ListJobs {
        state: Some(state),
        ..ListJobs::default()
    };
    let ids = store
        .list(&list)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert_eq!(store.count(&list).await.unwrap(), {
        let ids: &Vec<i64> = &ids;
        ids.len() as u64
    });
    ids
}

pub async fn held_jobs_are_reported_pending_until_they_start<S: Store>(store: &S) {
    let a = store.enqueue(job("k", 1)).await.unwrap().id;
    let b = store.enqueue(job("k", 2)).await.unwrap().id;
    let held = store.claim(&Claim::new("w", 2).hold()).await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(
        held.iter()
            .all(|j| j.state == JobState::Running && j.started_at.is_none())
    );

    let job_a = get(store, a).await;
    assert_eq!(
        job_a.state,
        JobState::Pending,
        "held, not started: {job_a:?}"
    );
    assert_eq!(job_a.started_at, None);
    assert_eq!(
        job_a.lease_owner.as_deref(),
        Some("w"),
        "who holds it is shown"
    );
    let stats = &store.queue_stats().await.unwrap()[0];
    assert_eq!((stats.counts.pending, stats.counts.running), (2, 0));
    let activity = store
        .queue_activity(chrono::Utc::now(), Duration::ZERO)
        .await
        .unwrap();
    let counts = activity.queues[0].counts;
    assert_eq!((counts.pending, counts.running), (2, 0));
    assert_eq!(listed(store, JobState::Pending).await, [b.0, a.0]);
    assert!(listed(store, JobState::Running).await.is_empty());

    let lease_a = held.iter().find(|j| j.id == a).unwrap().lease().unwrap();
    assert_eq!(
        store.start_held(&[lease_a]).await.unwrap(),
        [HeldStatus::Done]
    );
    let job_a = get(store, a).await;
    assert_eq!(job_a.state, JobState::Running);
    assert!(job_a.started_at.is_some());
    let stats = &store.queue_stats().await.unwrap()[0];
    assert_eq!((stats.counts.pending, stats.counts.running), (1, 1));
    assert_eq!(listed(store, JobState::Running).await, [a.0]);
    assert_eq!(listed(store, JobState::Pending).await, [b.0]);
    assert_eq!(
        store.start_held(&[lease_a]).await.unwrap(),
        [HeldStatus::Lost],
        "started once only"
    );
    // A started job completes like any other.
    store.complete(lease_a, None).await.unwrap();
}

pub async fn a_cancelled_held_job_ends_at_once_and_never_starts<S: Store>(store: &S) {
    let a = store.enqueue(job("k", 1)).await.unwrap().id;
    let b = store.enqueue(job("k", 2)).await.unwrap().id;
    let held = store.claim(&Claim::new("w", 2).hold()).await.unwrap();
    let leases: Vec<_> = held.iter().map(|j| j.lease().unwrap()).collect();
    assert_eq!(store.cancel(a).await.unwrap(), JobState::Cancelled);
    let job_a = get(store, a).await;
    assert_eq!(job_a.state, JobState::Cancelled);
    assert_eq!(job_a.attempt, 0, "it never ran");
    assert!(job_a.finished_at.is_some());
    assert_eq!(
        store.start_held(&leases).await.unwrap(),
        [HeldStatus::Cancelled, HeldStatus::Done]
    );
    assert_eq!(get(store, a).await.state, JobState::Cancelled);
    // Once started, a cancel only asks the job to stop.
    assert_eq!(store.cancel(b).await.unwrap(), JobState::Running);
    assert!(get(store, b).await.cancel_requested);
}

pub async fn a_released_held_job_goes_back_in_its_place<S: Store>(store: &S) {
    let a = store.enqueue(job("k", 1)).await.unwrap().id;
    let run_at = get(store, a).await.run_at;
    let held = store.claim(&Claim::new("w", 1).hold()).await.unwrap();
    let lease = held[0].lease().unwrap();
    let mut wakeups = store.listen().await.unwrap();
    assert_eq!(wakeups.next().await, floodgate_queue::Wakeup::Poll); // the first tick
    assert_eq!(
        store.release_held(&[lease]).await.unwrap(),
        [HeldStatus::Done]
    );
    let back = get(store, a).await;
    assert_eq!(
        (back.state, back.attempt, back.run_at, back.lease_token),
        (JobState::Pending, 0, run_at, None),
        "in its place, attempt unspent"
    );
    let woke = tokio::time::timeout(Duration::from_secs(5), wakeups.next())
        .await
        .expect("idle workers are woken");
    assert!(
        matches!(woke, floodgate_queue::Wakeup::Enqueued { .. }),
        "{woke:?}"
    );
    assert_eq!(
        store.release_held(&[lease]).await.unwrap(),
        [HeldStatus::Lost]
    );
    assert_eq!(
        store.start_held(&[lease]).await.unwrap(),
        [HeldStatus::Lost],
        "a lease given back starts nothing"
    );
    // A job whose start was recorded but which the worker did not run goes back too; one
    // whose cancel was asked for since ends cancelled, never having run.
    let b = store.enqueue(job("k", 2).queue("q")).await.unwrap().id;
    let c = store.enqueue(job("k", 3).queue("q")).await.unwrap().id;
    let held = store
        .claim(&Claim::new("w", 2).queues(["q"]).hold())
        .await
        .unwrap();
    let leases: Vec<_> = held.iter().map(|j| j.lease().unwrap()).collect();
    assert_eq!(
        store.start_held(&leases).await.unwrap(),
        [HeldStatus::Done, HeldStatus::Done]
    );
    assert_eq!(store.cancel(c).await.unwrap(), JobState::Running);
    assert_eq!(
        store.release_held(&leases).await.unwrap(),
        [HeldStatus::Done, HeldStatus::Cancelled]
    );
    let (b, c) = (get(store, b).await, get(store, c).await);
    assert_eq!(
        (b.state, b.attempt, b.started_at),
        (JobState::Pending, 0, None)
    );
    assert_eq!((c.state, c.attempt), (JobState::Cancelled, 0));
}

pub async fn a_held_job_is_rescued_with_its_attempt_unspent<S: Store>(store: &S) {
    let a = store.enqueue(job("k", 1).max_attempts(1)).await.unwrap().id;
    store
        .claim(
            &Claim::new("w", 1)
                .hold()
                .lease_ttl(Duration::from_millis(20)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let rescued = store.rescue_expired(10).await.unwrap();
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].state, JobState::Pending, "never ran: not dead");
    let job = get(store, a).await;
    assert_eq!((job.state, job.attempt), (JobState::Pending, 0));
}
