//! Actions on every job matching a filter: retry the dead and cancelled ones, cancel the
//! waiting and running ones. The dashboard confirms the count first (`GET /v1/jobs/count`);
//! these then walk the matching jobs newest first, a page at a time, and act on each. A job
//! that changed state in between (finished, or retried by someone else) is passed over.
//!
//! The walk runs in a task of its own: a client that goes away mid-way does not leave it
//! half done.

use std::sync::Arc;

use floodgate_queue::{AnyStore, JobId, JobState, ListJobs, Store, StoreError};

use crate::sampler::QueueSampler;

/// What a bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Requeue `dead` and `cancelled` jobs with fresh attempts.
    Retry,
    /// Cancel `pending` and `failed` jobs; ask `running` ones to stop.
    Cancel,
}

impl Action {
    /// The states the action applies to.
    pub fn states(self) -> &'static [JobState] {
        match self {
            Action::Retry => &[JobState::Dead, JobState::Cancelled],
            Action::Cancel => &[JobState::Pending, JobState::Failed, JobState::Running],
        }
    }
}

/// Applies `action` to every job matching `filter` (its `state`, if any, must be one the
/// action applies to, or nothing matches); how many jobs it changed.
///
/// # Cancel safety
///
/// Cancel safe: the walk runs to the end in its own task even if this future is dropped.
pub async fn apply(
    store: &AnyStore,
    sampler: &Arc<QueueSampler>,
    action: Action,
    filter: ListJobs,
) -> Result<u64, BulkError> {
    let (store, sampler) = (store.clone(), sampler.clone());
    tokio::spawn(async move {
        let done = walk(&store, action, filter).await;
        if action == Action::Retry {
            // Finished jobs left their states: the next count starts over (here, so that it
            // happens even when the request was answered with a timeout meanwhile).
            sampler.invalidate();
        }
        done
    })
    .await
    .map_err(|e| BulkError::Stopped(e.to_string()))?
    .map_err(BulkError::Store)
}

/// Why a bulk action did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task doing it panicked or was cancelled (a bug: the server's log has it).
    #[error("the bulk action stopped: {0}")]
    Stopped(String),
}

async fn walk(store: &AnyStore, action: Action, filter: ListJobs) -> Result<u64, StoreError> {
    let states: Vec<JobState> = match filter.state {
        Some(s) if action.states().contains(&s) => vec![s],
        Some(_) => return Ok(0),
        None => action.states().to_vec(),
    };
    let mut affected = 0;
    for state in states {
        let mut page = ListJobs {
            state: Some(state),
            before: None,
            limit: 1_000,
            ..filter.clone()
        };
        loop {
            let found = store.list(&page).await?;
            for job in &found.jobs {
                if act(store, action, job.id).await? {
                    affected += 1;
                }
            }
            match found.next {
                Some(next) => page.before = Some(next),
                None => break,
            }
        }
    }
    Ok(affected)
}

/// Acts on one job: `false` when it had moved on to a state the action does not apply to.
async fn act(store: &AnyStore, action: Action, id: JobId) -> Result<bool, StoreError> {
    let done = match action {
        Action::Retry => store.retry_dead(id).await,
        Action::Cancel => store.cancel(id).await.map(|_| ()),
    };
    match done {
        Ok(()) => Ok(true),
        Err(StoreError::InvalidState { .. } | StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
