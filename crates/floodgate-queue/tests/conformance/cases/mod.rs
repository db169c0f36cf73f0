//! The cases, each generic over `Store`.

mod claim;
mod concurrency;
mod enqueue;
mod held;
mod inbox;
mod leader;
mod lease;
mod operations;

pub use claim::*;
pub use concurrency::*;
pub use enqueue::*;
pub use held::*;
pub use inbox::*;
pub use leader::*;
pub use lease::*;
pub use operations::*;

use std::time::Duration;

use chrono::Utc;
use floodgate_queue::{Claim, Job, JobId, Lease, NewJob, Store};
use serde_json::json;

/// A job of kind `kind` with payload `{"n": n}`.
pub fn job(kind: &str, n: i64) -> NewJob {
    NewJob::new(kind, json!({ "n": n }))
}

/// Claims up to `limit` jobs from `default` for `worker`.
pub async fn claim<S: Store>(store: &S, worker: &str, limit: u32) -> Vec<Job> {
    store
        .claim(&Claim::new(worker, limit))
        .await
        .expect("claim")
}

/// Claims exactly one job and returns its lease.
pub async fn claim_one<S: Store>(store: &S, worker: &str) -> (Job, Lease) {
    let mut jobs = claim(store, worker, 1).await;
    assert_eq!(jobs.len(), 1, "expected one claimable job");
    let job = jobs.pop().unwrap();
    let lease = job.lease().expect("a claimed job has a lease");
    (job, lease)
}

/// The job, which must exist.
pub async fn get<S: Store>(store: &S, id: JobId) -> Job {
    store.job(id).await.expect("read job").expect("job exists")
}

/// A time far enough ahead that nothing scheduled for it runs during a test.
pub fn in_an_hour() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::hours(1)
}

/// Claims with a lease short enough to expire during a test, and waits until it has.
pub async fn claim_and_let_expire<S: Store>(store: &S, worker: &str) -> (Job, Lease) {
    let mut jobs = store
        .claim(&Claim::new(worker, 1).lease_ttl(Duration::from_millis(20)))
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    let job = jobs.pop().unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let lease = job.lease().unwrap();
    (job, lease)
}
