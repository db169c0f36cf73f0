//! Updates that name their jobs, shared by the backends: the fenced single-job completions
//! (`complete`, `fail`, `dead`, `snooze`, which hold only while the caller's lease token does),
//! the batch completion and the leases it lost, and the updates by id (`retry_dead`,
//! `cancel`) whose miss is explained by looking the job up.
//!
//! Each backend runs its own statement (given here as a future, or a closure that builds one
//! once the input is valid); what a miss means, what is counted in metrics and what is
//! returned is decided here, once.

use std::collections::HashSet;
use std::future::Future;

use serde_json::Value;

use crate::error::StoreError;
use crate::job::{JobId, JobState, Lease};
use crate::observe::Observe;
use crate::store::Completion;

/// Runs one fenced update: its value when the lease held, [`StoreError::LeaseLost`] (counted
/// and logged) when it matched no row.
async fn fenced<T>(
    observe: &Observe,
    lease: Lease,
    operation: &'static str,
    update: impl Future<Output = Result<Option<T>, StoreError>>,
) -> Result<T, StoreError> {
    match update.await? {
        Some(value) => Ok(value),
        None => {
            observe.lease_lost(lease.id, operation);
            Err(StoreError::LeaseLost { id: lease.id })
        }
    }
}

/// `complete`: the result is checked before `update` builds the statement with it.
pub(crate) async fn complete(
    observe: &Observe,
    lease: Lease,
    result: Option<Value>,
    update: impl AsyncFnOnce(Option<Value>) -> Result<Option<()>, StoreError>,
) -> Result<(), StoreError> {
    if let Some(r) = &result {
        crate::json::validate("result", r)?;
    }
    fenced(observe, lease, "complete", update(result)).await?;
    observe.finished("succeeded", 1);
    Ok(())
}

/// `fail`: `update` returns the state the job went to.
pub(crate) async fn fail(
    observe: &Observe,
    lease: Lease,
    update: impl Future<Output = Result<Option<JobState>, StoreError>>,
) -> Result<JobState, StoreError> {
    let state = fenced(observe, lease, "fail", update).await?;
    observe.finished_state(state);
    Ok(state)
}

/// `dead`.
pub(crate) async fn dead(
    observe: &Observe,
    lease: Lease,
    update: impl Future<Output = Result<Option<()>, StoreError>>,
) -> Result<(), StoreError> {
    fenced(observe, lease, "dead", update).await?;
    observe.finished("dead", 1);
    Ok(())
}

/// `snooze`: `update` returns the state the job went to (`cancelled` when cancellation was
/// asked for meanwhile).
pub(crate) async fn snooze(
    observe: &Observe,
    lease: Lease,
    update: impl Future<Output = Result<Option<JobState>, StoreError>>,
) -> Result<(), StoreError> {
    let state = fenced(observe, lease, "snooze", update).await?;
    observe.finished(
        if state == JobState::Cancelled {
            "cancelled"
        } else {
            "snoozed"
        },
        1,
    );
    Ok(())
}

/// `record_attempt`: the attempt must be a JSON object the store can keep; `update` appends it.
pub(crate) async fn record_attempt(
    observe: &Observe,
    lease: Lease,
    attempt: Value,
    update: impl AsyncFnOnce(String) -> Result<Option<()>, StoreError>,
) -> Result<(), StoreError> {
    if !attempt.is_object() {
        return Err(StoreError::invalid(
            "attempt",
            "must be a JSON object".to_owned(),
        ));
    }
    crate::json::validate("attempt", &attempt)?;
    fenced(
        observe,
        lease,
        "record_attempt",
        update(attempt.to_string()),
    )
    .await
}

/// `complete_many`: nothing runs for an empty batch; the results are checked before `update`
/// builds the statement; `update` returns the ids it completed, and the others (their lease
/// lost) are returned, counted and logged.
pub(crate) async fn complete_many(
    observe: &Observe,
    completions: &[Completion],
    update: impl AsyncFnOnce() -> Result<Vec<i64>, StoreError>,
) -> Result<Vec<JobId>, StoreError> {
    if completions.is_empty() {
        return Ok(Vec::new());
    }
    validate_results(completions)?;
    let done: HashSet<i64> = update().await?.into_iter().collect();
    let lost: Vec<JobId> = completions
        .iter()
        .map(|c| c.lease.id)
        .filter(|id| !done.contains(&id.0))
        .collect();
    for id in &lost {
        observe.lease_lost(*id, "complete");
    }
    observe.finished("succeeded", done.len());
    Ok(lost)
}

/// An update of the job `id` that matches only in the `expected` states: its value, or why it
/// matched nothing (no such job, or the state `state_of` finds it in).
pub(crate) async fn by_id<T>(
    id: JobId,
    operation: &'static str,
    expected: &'static str,
    update: impl Future<Output = Result<Option<T>, sqlx::Error>>,
    state_of: impl Future<Output = Result<Option<String>, sqlx::Error>>,
) -> Result<T, StoreError> {
    match update.await? {
        Some(value) => Ok(value),
        None => Err(StoreError::missed(id, state_of.await, operation, expected)),
    }
}

/// `retry_dead`: `update` returns the job's queue (to wake its workers).
pub(crate) async fn retry_dead(
    id: JobId,
    update: impl Future<Output = Result<Option<String>, sqlx::Error>>,
    state_of: impl Future<Output = Result<Option<String>, sqlx::Error>>,
) -> Result<String, StoreError> {
    by_id(id, "retry", "dead or cancelled", update, state_of).await
}

/// `cancel`: `update` returns the state after the call; cancelling a cancelled job again is
/// not an error.
pub(crate) async fn cancel(
    id: JobId,
    update: impl Future<Output = Result<Option<String>, sqlx::Error>>,
    state_of: impl Future<Output = Result<Option<String>, sqlx::Error>>,
) -> Result<JobState, StoreError> {
    match by_id(id, "cancel", "pending, failed or running", update, state_of).await {
        Ok(state) => state.parse(),
        Err(StoreError::InvalidState {
            state: JobState::Cancelled,
            ..
        }) => Ok(JobState::Cancelled),
        Err(e) => Err(e),
    }
}

/// Checks the results of a completion batch before any is written.
fn validate_results(completions: &[super::Completion]) -> Result<(), StoreError> {
    completions
        .iter()
        .filter_map(|c| c.result.as_ref())
        .try_for_each(|r| crate::json::validate("result", r))
}
