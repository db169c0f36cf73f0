//! Model-based property test of the job life cycle: random sequences of enqueue, claim,
//! complete, fail, dead, snooze, cancel, retry and stale-lease calls run against the SQLite
//! store and against a plain model of the state machine; after every step the store must
//! agree with the model (state, attempts, lease), claims must take only runnable jobs, as
//! many as allowed, highest priority first, and a lease that is not current must change
//! nothing.

use std::collections::BTreeMap;

use floodgate_queue::{Claim, JobId, JobState, Lease, NewJob, SqliteStore, Store, StoreError};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Enqueue { priority: u8, max_attempts: u32 },
    Claim { limit: u32 },
    Complete { pick: usize },
    Fail { pick: usize },
    Dead { pick: usize },
    Snooze { pick: usize },
    Cancel { pick: usize },
    RetryDead { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..=10, 1u32..=3).prop_map(|(priority, max_attempts)| Op::Enqueue { priority, max_attempts }),
        3 => (1u32..=3).prop_map(|limit| Op::Claim { limit }),
        2 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Fail { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Dead { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Snooze { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::RetryDead { pick }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    state: JobState,
    priority: u8,
    attempt: u32,
    max_attempts: u32,
    cancel_requested: bool,
    lease: Option<Lease>,
}

impl Model {
    fn runnable(&self) -> bool {
        matches!(self.state, JobState::Pending | JobState::Failed)
    }
}

/// Every lease ever handed out (current and stale), for picking.
fn pick<T: Copy>(items: &[T], pick: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[pick % items.len()])
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = SqliteStore::in_memory().await.unwrap();
    let mut model: BTreeMap<JobId, Model> = BTreeMap::new();
    let mut leases: Vec<Lease> = Vec::new();
    let now = chrono::Utc::now;
    for op in ops {
        match op {
            Op::Enqueue {
                priority,
                max_attempts,
            } => {
                let e = store
                    .enqueue(
                        NewJob::new("k", json!(null))
                            .priority(priority)
                            .max_attempts(max_attempts),
                    )
                    .await
                    .unwrap();
                model.insert(
                    e.id,
                    Model {
                        state: JobState::Pending,
                        priority,
                        attempt: 0,
                        max_attempts,
                        cancel_requested: false,
                        lease: None,
                    },
                );
            }
            Op::Claim { limit } => {
                let claimed = store.claim(&Claim::new("w", limit)).await.unwrap();
                let runnable = model.values().filter(|m| m.runnable()).count();
                prop_assert_eq!(claimed.len(), runnable.min(limit as usize));
                let lowest_taken = claimed.iter().map(|j| j.priority).min();
                for job in &claimed {
                    let m = model.get_mut(&job.id).unwrap();
                    prop_assert!(m.runnable(), "claimed a {} job", m.state);
                    m.state = JobState::Running;
                    m.attempt += 1;
                    m.lease = job.lease();
                    leases.push(job.lease().unwrap());
                }
                if let Some(lowest) = lowest_taken {
                    let best_left = model
                        .values()
                        .filter(|m| m.runnable())
                        .map(|m| m.priority)
                        .max();
                    prop_assert!(
                        best_left.is_none_or(|p| p <= lowest),
                        "skipped a higher priority"
                    );
                }
            }
            Op::Complete { pick: p }
            | Op::Fail { pick: p }
            | Op::Dead { pick: p }
            | Op::Snooze { pick: p } => {
                let Some(lease) = pick(&leases, p) else {
                    continue;
                };
                let m = model.get_mut(&lease.id).unwrap();
                let current = m.state == JobState::Running && m.lease == Some(lease);
                let result = match op {
                    Op::Complete { .. } => store
                        .complete(lease, None)
                        .await
                        .map(|()| JobState::Succeeded),
                    Op::Fail { .. } => store.fail(lease, "boom", now()).await,
                    Op::Dead { .. } => store.dead(lease, "fatal").await.map(|()| JobState::Dead),
                    _ => store.snooze(lease, now()).await.map(|()| JobState::Pending),
                };
                if !current {
                    prop_assert!(
                        matches!(result, Err(StoreError::LeaseLost { .. })),
                        "{result:?}"
                    );
                    continue;
                }
                let expected = match op {
                    Op::Complete { .. } => JobState::Succeeded,
                    Op::Dead { .. } => JobState::Dead,
                    Op::Fail { .. } if m.cancel_requested => JobState::Cancelled,
                    Op::Fail { .. } if m.attempt >= m.max_attempts => JobState::Dead,
                    Op::Fail { .. } => JobState::Failed,
                    // A snooze gives its attempt back, also when it ends in cancellation.
                    _ => {
                        m.attempt -= 1;
                        if m.cancel_requested {
                            JobState::Cancelled
                        } else {
                            JobState::Pending
                        }
                    }
                };
                let reported = result.unwrap();
                if !matches!(op, Op::Snooze { .. }) {
                    prop_assert_eq!(reported, expected);
                }
                m.state = expected;
                m.lease = None;
            }
            Op::Cancel { pick: p } => {
                let ids: Vec<JobId> = model.keys().copied().collect();
                let Some(id) = pick(&ids, p) else { continue };
                let m = model.get_mut(&id).unwrap();
                let result = store.cancel(id).await;
                match m.state {
                    JobState::Pending | JobState::Failed => {
                        prop_assert_eq!(result.unwrap(), JobState::Cancelled);
                        m.state = JobState::Cancelled;
                    }
                    JobState::Running => {
                        prop_assert_eq!(result.unwrap(), JobState::Running);
                        m.cancel_requested = true;
                    }
                    JobState::Cancelled => prop_assert_eq!(result.unwrap(), JobState::Cancelled),
                    _ => prop_assert!(
                        matches!(result, Err(StoreError::InvalidState { .. })),
                        "{result:?}"
                    ),
                }
            }
            Op::RetryDead { pick: p } => {
                let ids: Vec<JobId> = model.keys().copied().collect();
                let Some(id) = pick(&ids, p) else { continue };
                let m = model.get_mut(&id).unwrap();
                let result = store.retry_dead(id).await;
                if matches!(m.state, JobState::Dead | JobState::Cancelled) {
                    prop_assert!(result.is_ok(), "{result:?}");
                    m.state = JobState::Pending;
                    m.attempt = 0;
                    m.cancel_requested = false;
                } else {
                    prop_assert!(
                        matches!(result, Err(StoreError::InvalidState { .. })),
                        "{result:?}"
                    );
                }
            }
        }
        // The store agrees with the model on every job.
        for (id, m) in &model {
            let job = store.job(*id).await.unwrap().unwrap();
            prop_assert_eq!(job.state, m.state, "job {}", id);
            prop_assert_eq!(job.attempt, m.attempt, "job {}", id);
            prop_assert_eq!(job.cancel_requested, m.cancel_requested, "job {}", id);
            prop_assert_eq!(job.lease(), m.lease, "job {}", id);
            prop_assert_eq!(job.lease_token.is_some(), job.state == JobState::Running);
            prop_assert_eq!(
                job.finished_at.is_some(),
                job.state.is_finished(),
                "job {}",
                id
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_store_follows_the_job_state_machine(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
