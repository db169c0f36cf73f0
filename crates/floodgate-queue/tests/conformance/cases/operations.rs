//! Operations on jobs and queues: retrying dead jobs, cancelling, pausing, stats, retention,
//! listing and wake-ups.

use std::time::Duration;

use floodgate_queue::{
    Claim, JobId, JobState, LeaseStatus, ListJobs, Retention, Store, StoreError, Wakeup,
};

use floodgate_queue::NewJob;

use super::{claim, claim_one, get, job};

pub async fn retry_dead_requeues_dead_jobs<S: Store>(store: &S) {
    let e = store.enqueue(job("k", 1).max_attempts(1)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    assert_eq!(
        store.fail(lease, "boom", chrono::Utc::now()).await.unwrap(),
        JobState::Dead
    );

    store.retry_dead(e.id).await.unwrap();
    let requeued = get(store, e.id).await;
    assert_eq!(requeued.state, JobState::Pending);
    assert_eq!(requeued.attempt, 0);
    assert_eq!(requeued.finished_at, None);
    assert_eq!(
        requeued.last_error.as_deref(),
        Some("boom"),
        "last error kept"
    );

    match store.retry_dead(e.id).await {
        Err(StoreError::InvalidState { state, .. }) => assert_eq!(state, JobState::Pending),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    match store.retry_dead(JobId(9_999_999)).await {
        Err(StoreError::NotFound { id }) => assert_eq!(id, JobId(9_999_999)),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // All dead jobs of a queue and kind.
    let (_, lease) = claim_one(store, "w").await;
    store.dead(lease, "x").await.unwrap();
    for (kind, n) in [("a", 2), ("a", 3), ("b", 4)] {
        store.enqueue(job(kind, n)).await.unwrap();
    }
    for lease in claim(store, "w", 10)
        .await
        .iter()
        .map(|j| j.lease().unwrap())
    {
        store.dead(lease, "x").await.unwrap();
    }
    assert_eq!(store.retry_dead_all("default", Some("a")).await.unwrap(), 2);
    assert_eq!(store.retry_dead_all("default", None).await.unwrap(), 2);
    assert_eq!(store.retry_dead_all("default", None).await.unwrap(), 0);
    assert_eq!(claim(store, "w", 10).await.len(), 4);
}

pub async fn cancel_finishes_waiting_jobs_and_flags_running_ones<S: Store>(store: &S) {
    let waiting = store.enqueue(job("k", 1)).await.unwrap();
    assert_eq!(store.cancel(waiting.id).await.unwrap(), JobState::Cancelled);
    let c = get(store, waiting.id).await;
    assert_eq!(c.state, JobState::Cancelled);
    assert!(c.finished_at.is_some());
    assert_eq!(
        store.cancel(waiting.id).await.unwrap(),
        JobState::Cancelled,
        "idempotent"
    );
    assert!(claim(store, "w", 10).await.is_empty());

    let running = store.enqueue(job("k", 2)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    assert_eq!(store.cancel(running.id).await.unwrap(), JobState::Running);
    let flagged = get(store, running.id).await;
    assert!(flagged.cancel_requested);
    assert_eq!(flagged.state, JobState::Running);
    let heartbeat = store
        .extend_leases("w", &[lease], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(heartbeat, [LeaseStatus::CancelRequested]);
    // The worker stops and reports a failure: the job ends cancelled, not retried.
    assert_eq!(
        store
            .fail(lease, "cancelled by request", chrono::Utc::now())
            .await
            .unwrap(),
        JobState::Cancelled
    );

    let done = store.enqueue(job("k", 3)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.complete(lease, None).await.unwrap();
    match store.cancel(done.id).await {
        Err(StoreError::InvalidState {
            state, operation, ..
        }) => {
            assert_eq!(state, JobState::Succeeded);
            assert_eq!(operation, "cancel");
        }
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert!(matches!(
        store.cancel(JobId(9_999_999)).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn paused_queues_are_not_claimed<S: Store>(store: &S) {
    store.enqueue(job("k", 1)).await.unwrap();
    let other = store.enqueue(job("k", 2).queue("other")).await.unwrap();
    store.pause("default").await.unwrap();
    assert!(claim(store, "w", 10).await.is_empty());
    let both = store
        .claim(&Claim::new("w", 10).queues(["default", "other"]))
        .await
        .unwrap();
    assert_eq!(both.iter().map(|j| j.id).collect::<Vec<_>>(), [other.id]);
    store.pause("default").await.unwrap(); // twice is fine
    store.resume("default").await.unwrap();
    assert_eq!(claim(store, "w", 10).await.len(), 1);
    assert!(matches!(
        store.pause("").await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn queue_stats_count_every_state<S: Store>(store: &S) {
    for n in 0..6 {
        store.enqueue(job("k", n)).await.unwrap();
    }
    store
        .enqueue(job("k", 9).queue("later").run_at(super::in_an_hour()))
        .await
        .unwrap();
    store.pause("idle").await.unwrap();
    let jobs = claim(store, "w", 4).await;
    store
        .complete(jobs[0].lease().unwrap(), None)
        .await
        .unwrap();
    store
        .fail(jobs[1].lease().unwrap(), "x", super::in_an_hour())
        .await
        .unwrap();
    store.dead(jobs[2].lease().unwrap(), "x").await.unwrap();
    let cancelled = store.enqueue(job("k", 7)).await.unwrap();
    store.cancel(cancelled.id).await.unwrap();

    let stats = store.queue_stats().await.unwrap();
    let names: Vec<_> = stats.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(names, ["default", "idle", "later"]);
    let default = &stats[0];
    assert!(!default.paused);
    assert_eq!(
        [
            JobState::Pending,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::Cancelled
        ]
        .map(|s| default.counts.get(s)),
        [2, 1, 1, 1, 1, 1]
    );
    assert!(default.oldest_runnable_age.is_some());
    assert!(stats[1].paused, "a paused queue with no jobs is listed");
    assert_eq!(stats[1].counts, Default::default());
    assert_eq!(stats[2].counts.pending, 1);
    assert_eq!(stats[2].oldest_runnable_age, None, "not runnable yet");
}

pub async fn retention_deletes_old_finished_jobs_in_batches<S: Store>(store: &S) {
    let jobs: Vec<_> = (0..13).map(|n| job("k", n)).collect();
    store.enqueue_many(jobs).await.unwrap();
    let claimed = claim(store, "w", 12).await;
    for j in &claimed[..10] {
        store.complete(j.lease().unwrap(), None).await.unwrap();
    }
    store.dead(claimed[10].lease().unwrap(), "x").await.unwrap();
    // claimed[11] stays running, and one job stays pending.

    let keep_all = Retention {
        succeeded: Duration::from_secs(3600),
        dead: Duration::from_secs(3600),
        batch_size: 3,
    };
    assert_eq!(store.delete_finished(keep_all).await.unwrap(), 0);
    // Dead jobs kept longer than succeeded ones.
    let succeeded_only = Retention {
        succeeded: Duration::ZERO,
        ..keep_all
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.delete_finished(succeeded_only).await.unwrap(), 10);
    assert_eq!(get(store, claimed[10].id).await.state, JobState::Dead);
    let everything = Retention {
        succeeded: Duration::ZERO,
        dead: Duration::ZERO,
        batch_size: 3,
    };
    assert_eq!(store.delete_finished(everything).await.unwrap(), 1);
    let left = store.list(&ListJobs::default()).await.unwrap().jobs;
    let mut states: Vec<_> = left.iter().map(|j| j.state).collect();
    states.sort_by_key(|s| s.as_str());
    assert_eq!(states, [JobState::Pending, JobState::Running]);
    assert!(matches!(
        store
            .delete_finished(Retention {
                batch_size: 0,
                ..everything
            })
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn list_pages_by_keyset<S: Store>(store: &S) {
    let ids: Vec<_> = store
        .enqueue_many(
            (0..25)
                .map(|n| job(if n % 5 == 0 { "five" } else { "k" }, n))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut seen = Vec::new();
    let mut list = ListJobs {
        limit: 10,
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list(&list).await.unwrap();
        pages += 1;
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => list.before = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");

    let fives = store
        .list(&ListJobs {
            kind: Some("five".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(fives.jobs.len(), 5);
    assert_eq!(fives.next, None);
    let (_, lease) = claim_one(store, "w").await;
    let running = store
        .list(&ListJobs {
            state: Some(JobState::Running),
            queue: Some("default".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        running.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [lease.id]
    );
}

pub async fn listen_wakes_on_enqueue<S: Store>(store: &S) {
    let mut wakeups = store
        .listen()
        .await
        .unwrap()
        .poll_interval(Duration::from_secs(3600));
    assert_eq!(
        wakeups.next().await,
        Wakeup::Poll,
        "the first tick looks at once"
    );
    // A `Poll` may come between (on SQLite files, any commit shows as one): skip those.
    async fn next_enqueued(wakeups: &mut floodgate_queue::Wakeups) -> String {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), wakeups.next())
                .await
                .expect("a wake-up within 10 s")
            {
                Wakeup::Enqueued { queue } => return queue,
                Wakeup::Poll => continue,
            }
        }
    }
    store.enqueue(job("k", 1).queue("mail")).await.unwrap();
    assert_eq!(next_enqueued(&mut wakeups).await, "mail");
    // One batch wakes each of its queues.
    store
        .enqueue_many(vec![
            job("k", 2).queue("a"),
            job("k", 3).queue("a"),
            job("k", 4).queue("b"),
        ])
        .await
        .unwrap();
    let mut queues = vec![
        next_enqueued(&mut wakeups).await,
        next_enqueued(&mut wakeups).await,
    ];
    queues.sort();
    assert_eq!(queues, ["a", "b"]);
}

pub async fn paused_groups_are_recorded_until_resumed<S: Store>(store: &S) {
    assert!(store.paused_groups().await.unwrap().is_empty());
    store
        .pause_group("hooks.example.com", "410 Gone")
        .await
        .unwrap();
    store.pause_group("billing", "maintenance").await.unwrap();
    store
        .pause_group("hooks.example.com", "410 Gone again")
        .await
        .unwrap();
    let paused = store.paused_groups().await.unwrap();
    let names: Vec<_> = paused.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["billing", "hooks.example.com"]);
    assert_eq!(
        paused[1].reason, "410 Gone again",
        "a second pause updates the reason"
    );
    let age = chrono::Utc::now() - paused[0].paused_at;
    assert!(
        age < chrono::Duration::minutes(1),
        "paused_at is now: {age}"
    );

    assert!(store.resume_group("billing").await.unwrap());
    assert!(
        !store.resume_group("billing").await.unwrap(),
        "already resumed"
    );
    let left: Vec<_> = store
        .paused_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(left, ["hooks.example.com"]);
    assert!(store.pause_group("", "no name").await.is_err());
}

pub async fn list_and_count_filter_by_error_and_payload<S: Store>(store: &S) {
    let a = store
        .enqueue(NewJob::new(
            "order",
            serde_json::json!({"customer": {"id": 42}, "n": 1}),
        ))
        .await
        .unwrap();
    let b = store
        .enqueue(NewJob::new(
            "order",
            serde_json::json!({"customer": {"id": "x-7"}}),
        ))
        .await
        .unwrap();
    let third = store.enqueue(job("order", 3)).await.unwrap();
    let matching = |path: &str, value: &str| ListJobs {
        payload_path: Some(path.to_owned()),
        payload_value: Some(value.to_owned()),
        ..ListJobs::default()
    };
    for (path, value, want) in [
        ("customer.id", "42", vec![a.id]),
        ("customer.id", "x-7", vec![b.id]),
        ("customer.id", "43", vec![]),
        ("n", "1", vec![a.id]),
        ("customer.missing", "42", vec![]),
    ] {
        let list = matching(path, value);
        let ids: Vec<JobId> = store
            .list(&list)
            .await
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, want, "{path} = {value}");
        assert_eq!(store.count(&list).await.unwrap(), want.len() as u64);
    }
    for bad in ["", "a..b", "a.b\"", "a[0]", "x y"] {
        assert!(store.list(&matching(bad, "1")).await.is_err(), "{bad:?}");
        assert!(store.count(&matching(bad, "1")).await.is_err(), "{bad:?}");
    }

    // By last error, with the other filters.
    let (_, lease) = claim_one(store, "w").await;
    store
        .fail(
            lease,
            "connection refused",
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let by_error = ListJobs {
        error: Some("connection refused".to_owned()),
        state: Some(JobState::Failed),
        kind: Some("order".to_owned()),
        ..ListJobs::default()
    };
    assert_eq!(store.list(&by_error).await.unwrap().jobs.len(), 1);
    assert_eq!(store.count(&by_error).await.unwrap(), 1);
    assert_eq!(store.count(&ListJobs::default()).await.unwrap(), 3);

    // A path alone: the jobs whose payload has it (with any value, `null` too).
    let present = |path: &str| ListJobs {
        payload_path: Some(path.to_owned()),
        ..ListJobs::default()
    };
    let ids = |list: floodgate_queue::JobPage| list.jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    let mut both = ids(store.list(&present("customer.id")).await.unwrap());
    both.sort();
    assert_eq!(both, vec![a.id, b.id], "customer.id present");
    assert_eq!(
        ids(store.list(&present("n")).await.unwrap()),
        vec![third.id, a.id]
    );
    assert!(ids(store.list(&present("nope")).await.unwrap()).is_empty());
    assert_eq!(store.count(&present("n")).await.unwrap(), 2);
    let nulled = store
        .enqueue(NewJob::new("order", serde_json::json!({"gone": null})))
        .await
        .unwrap();
    assert_eq!(
        ids(store.list(&present("gone")).await.unwrap()),
        vec![nulled.id]
    );
    // A value alone: the jobs whose whole payload is it.
    let plain = store
        .enqueue(NewJob::new("order", serde_json::json!("plain")))
        .await
        .unwrap();
    let whole = ListJobs {
        payload_value: Some("plain".to_owned()),
        ..ListJobs::default()
    };
    assert_eq!(ids(store.list(&whole).await.unwrap()), vec![plain.id]);
    assert_eq!(store.count(&whole).await.unwrap(), 1);
}

pub async fn failures_are_grouped_by_kind_and_error<S: Store>(store: &S) {
    for (kind, error, n) in [
        ("pay", "connection refused", 3),
        ("pay", "HTTP 500", 1),
        ("mail", "connection refused", 2),
    ] {
        for i in 0..n {
            store.enqueue(job(kind, i).max_attempts(1)).await.unwrap();
            let (_, lease) = claim_one(store, "w").await;
            store.fail(lease, error, chrono::Utc::now()).await.unwrap();
        }
    }
    store.enqueue(job("pay", 9)).await.unwrap();
    let (_, lease) = claim_one(store, "w").await;
    store.complete(lease, None).await.unwrap();

    let groups = store.failure_groups(None, None, 100).await.unwrap();
    let seen: Vec<(&str, &str, u64)> = groups
        .iter()
        .map(|g| (g.kind.as_str(), g.error.as_str(), g.count))
        .collect();
    assert_eq!(
        seen,
        [
            ("pay", "connection refused", 3),
            ("mail", "connection refused", 2),
            ("pay", "HTTP 500", 1)
        ]
    );
    assert!(groups[0].first_seen <= groups[0].last_seen);
    let pay = store.failure_groups(None, Some("pay"), 1).await.unwrap();
    assert_eq!(pay.len(), 1, "limited");
    assert_eq!(pay[0].count, 3);
    assert!(
        store
            .failure_groups(Some("elsewhere"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn recent_waits_measure_due_to_start<S: Store>(store: &S) {
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let due = chrono::Utc::now() - chrono::Duration::milliseconds(300);
    store.enqueue(job("k", 1).run_at(due)).await.unwrap();
    store.enqueue(job("k", 2)).await.unwrap();
    let jobs = claim(store, "w", 10).await;
    assert!(
        jobs.iter().all(|j| j.started_at.is_some()),
        "a claim records its start"
    );
    for j in &jobs {
        store.complete(j.lease().unwrap(), None).await.unwrap();
    }
    let waits = store.recent_waits(since, 100).await.unwrap();
    assert_eq!(waits.len(), 2);
    assert!(
        waits.iter().any(|w| *w >= Duration::from_millis(290)),
        "the job due 300 ms before its claim waited that long: {waits:?}"
    );
    assert!(
        waits.iter().all(|w| *w < Duration::from_secs(5)),
        "{waits:?}"
    );
    assert_eq!(store.recent_waits(since, 1).await.unwrap().len(), 1);
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert!(store.recent_waits(later, 10).await.unwrap().is_empty());
}

pub async fn queue_activity_counts_the_unfinished_and_the_recently_finished<S: Store>(store: &S) {
    for n in 0..4 {
        store.enqueue(job("k", n)).await.unwrap();
    }
    store.enqueue(job("k", 9).queue("mail")).await.unwrap();
    let (_, first) = claim_one(store, "w").await;
    store.complete(first, None).await.unwrap();
    let before = store
        .queue_activity(
            chrono::Utc::now() - chrono::Duration::hours(1),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let default = before.queues.iter().find(|q| q.queue == "default").unwrap();
    assert_eq!(
        (default.counts.pending, default.counts.succeeded),
        (3, 1),
        "the finished job counts when it finished after `finished_since`"
    );
    assert!(default.oldest_runnable_age.is_some());

    // From `as_of` on, only jobs finished since count; unfinished ones are always exact.
    let (_, lease) = claim_one(store, "w").await;
    let after = store
        .queue_activity(before.settled_until, Duration::ZERO)
        .await
        .unwrap();
    let default = after.queues.iter().find(|q| q.queue == "default").unwrap();
    assert_eq!(
        (
            default.counts.pending,
            default.counts.running,
            default.counts.succeeded
        ),
        (2, 1, 0)
    );
    assert!(after.settled_until >= before.settled_until);
    store.dead(lease, "boom").await.unwrap();
    let last = store
        .queue_activity(after.settled_until, Duration::ZERO)
        .await
        .unwrap();
    let default = last.queues.iter().find(|q| q.queue == "default").unwrap();
    assert_eq!((default.counts.running, default.counts.dead), (0, 1));
    let mail = last.queues.iter().find(|q| q.queue == "mail").unwrap();
    assert_eq!(mail.counts.pending, 1);
    store
        .enqueue(job("k", 10).queue("later").run_at(super::in_an_hour()))
        .await
        .unwrap();
    let scheduled = store
        .queue_activity(last.settled_until, Duration::ZERO)
        .await
        .unwrap();
    let later = scheduled
        .queues
        .iter()
        .find(|q| q.queue == "later")
        .unwrap();
    assert_eq!(
        (later.counts.pending, later.oldest_runnable_age),
        (1, None),
        "a job not yet due is not waiting"
    );
    // With a settle longer than the test, every finished job is still settling: counted in
    // `recent` (and again next time), none added to the totals, and the cursor stays put.
    // (Whole microseconds: what both backends keep.)
    let since = chrono::DateTime::from_timestamp_micros(
        (chrono::Utc::now() - chrono::Duration::hours(1)).timestamp_micros(),
    )
    .unwrap();
    let settling = store
        .queue_activity(since, Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(settling.settled_until, since);
    let default = settling
        .queues
        .iter()
        .find(|q| q.queue == "default")
        .unwrap();
    assert_eq!((default.counts.succeeded, default.counts.dead), (0, 0));
    let recent = settling
        .recent
        .iter()
        .find(|q| q.queue == "default")
        .unwrap();
    assert_eq!((recent.counts.succeeded, recent.counts.dead), (1, 1));
    // A full count agrees with the sum of the pieces.
    let full = store.queue_stats().await.unwrap();
    let default = full.iter().find(|q| q.queue == "default").unwrap();
    assert_eq!(
        (
            default.counts.pending,
            default.counts.succeeded,
            default.counts.dead
        ),
        (2, 1, 1)
    );
}
