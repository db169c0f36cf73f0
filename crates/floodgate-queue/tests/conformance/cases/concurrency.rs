//! Concurrency: many claimers draining one queue, each job exactly once.

use std::collections::HashSet;
use std::sync::Arc;

use floodgate_queue::{Claim, Completion, JobState, NewJob, Store};
use serde_json::json;

/// 8 claimers drain 20,000 jobs: every job is claimed exactly once, none is missed.
pub async fn eight_claimers_drain_20000_jobs_exactly_once<S: Store + Clone>(store: &S) {
    const JOBS: usize = 20_000;
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(5_000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|n| NewJob::new("drain", json!({ "n": n })))
            .collect();
        store.enqueue_many(jobs).await.unwrap();
    }
    let store = Arc::new(store.clone());
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let worker = format!("claimer-{w}");
                loop {
                    let jobs = store.claim(&Claim::new(worker.as_str(), 50)).await.unwrap();
                    if jobs.is_empty() {
                        return mine;
                    }
                    let completions = jobs
                        .iter()
                        .map(|j| Completion {
                            lease: j.lease().unwrap(),
                            result: None,
                        })
                        .collect();
                    let lost = store.complete_many(completions).await.unwrap();
                    assert!(lost.is_empty(), "no lease can be lost here: {lost:?}");
                    mine.extend(jobs.iter().map(|j| j.payload["n"].as_u64().unwrap()));
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(JOBS);
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        JOBS,
        "claimed {} times for {JOBS} jobs",
        all.len()
    );
    assert_eq!(distinct.len(), JOBS, "every job claimed once");
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats[0].counts.get(JobState::Succeeded), JOBS as u64);
    assert_eq!(stats[0].counts.get(JobState::Pending), 0);
}
