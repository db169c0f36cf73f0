//! Reports for many jobs in one request, for workers that run many jobs at once: complete a
//! batch (one statement for all of them) and extend every lease a worker holds (one heartbeat
//! per interval, not one per job). Each job is fenced by its own lease as in the single-job
//! routes; a job whose lease no longer holds is listed under `lease_lost` and nothing is
//! written for it, while the others go through.
//!
//! ```text
//! POST /v1/jobs/complete  {"jobs": [{"id": 1, "lease_token": "41445..", "result": {"sent": true}}]}
//! -> 200 {"succeeded": [1], "lease_lost": []}
//! POST /v1/jobs/heartbeat {"worker": "w1", "lease_ttl": 60, "jobs": [{"id": 2, "lease_token": "77.."}]}
//! -> 200 {"extended": [2], "cancel_requested": [], "lease_lost": [], "lease_expires_at": "..."}
//! ```

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use floodgate_queue::{Completion, JobId, Lease, LeaseStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use super::workers::{lease, lease_ttl};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The most jobs one report names (as many as one claim hands out).
pub const MAX_REPORT: usize = 1_000;

/// One job's lease, as the claim returned it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    /// The job's id.
    pub id: i64,
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
}

/// One job's success.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    /// The job's id.
    pub id: i64,
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
    /// Kept on the job and shown by status polling.
    pub result: Option<Value>,
}

/// Successes of many jobs, written in one statement.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteManyRequest {
    /// The jobs. The same lease named twice is completed once; a job named under several
    /// tokens is completed under the one that holds it (the others are listed as lost).
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<CompleteItem>,
}

/// What became of each job of a batch completion.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CompletedMany {
    /// Marked succeeded.
    pub succeeded: Vec<i64>,
    /// No longer running under the token sent (expired and taken back, cancelled, or already
    /// reported): nothing was written for them.
    pub lease_lost: Vec<i64>,
}

/// A heartbeat for every job a worker holds.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatManyRequest {
    /// The worker's name, as given to the claims.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub worker: String,
    /// New lease length in seconds from now, 1..=3600 (default 300).
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_ttl: Option<u64>,
    /// The leases (the same lease named twice is extended once).
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<LeaseRef>,
}

/// What became of each lease of a batch heartbeat.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct HeartbeatMany {
    /// Extended; carry on.
    pub extended: Vec<i64>,
    /// Extended, but cancellation was asked for: stop, and report the job failed or done.
    pub cancel_requested: Vec<i64>,
    /// No longer held under the token sent (rescued, taken over, finished, or held under
    /// another worker's name): stop, write nothing.
    pub lease_lost: Vec<i64>,
    /// When the extended leases now run out.
    pub lease_expires_at: DateTime<Utc>,
}

/// Marks many running jobs succeeded in one statement, each fenced by its own lease.
#[utoipa::path(
    post, path = "/v1/jobs/complete", tag = "workers",
    request_body = CompleteManyRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Each job succeeded, or its lease was lost", body = CompletedMany),
    )
)]
pub async fn complete_many(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CompleteManyRequest>,
) -> ApiResult<Json<CompletedMany>> {
    let leases = leases(body.jobs.iter().map(|j| (j.id, j.lease_token.as_str())))?;
    let mut seen = HashSet::with_capacity(leases.len());
    let mut completions = Vec::with_capacity(leases.len());
    for (index, (item, lease)) in body.jobs.into_iter().zip(&leases).enumerate() {
        if let Some(result) = &item.result {
            Completion::check_result(result)
                .map_err(|e| ApiError::invalid(&format!("jobs[{index}].result"), e))?;
        }
        // The same lease twice: completed once.
        if seen.insert((lease.id, lease.token)) {
            completions.push(Completion {
                lease: *lease,
                result: item.result,
            });
        }
    }
    // A job named under several tokens (at most one of which can hold it) is fenced one entry
    // at a time; the rest go in one statement.
    let mut entries: HashMap<JobId, usize> = HashMap::with_capacity(completions.len());
    for c in &completions {
        *entries.entry(c.lease.id).or_default() += 1;
    }
    let (alone, together): (Vec<_>, Vec<_>) = completions
        .into_iter()
        .partition(|c| entries[&c.lease.id] > 1);
    let mut answer = CompletedMany {
        succeeded: Vec::with_capacity(leases.len()),
        lease_lost: Vec::new(),
    };
    let ids: Vec<JobId> = together.iter().map(|c| c.lease.id).collect();
    let lost: HashSet<JobId> = state
        .store()
        .complete_many(together)
        .await?
        .into_iter()
        .collect();
    for id in ids {
        if lost.contains(&id) {
            answer.lease_lost.push(id.0);
        } else {
            answer.succeeded.push(id.0);
        }
    }
    for completion in alone {
        let id = completion.lease.id;
        match state
            .store()
            .complete(completion.lease, completion.result)
            .await
        {
            Ok(()) => answer.succeeded.push(id.0),
            Err(floodgate_queue::StoreError::LeaseLost { .. }) => answer.lease_lost.push(id.0),
            Err(e) => return Err(e.into()),
        }
    }
    for lease in leases {
        state.leases().finished(lease);
    }
    Ok(Json(answer))
}

/// Extends every lease a worker names, in one statement; says which jobs were asked to
/// cancel and which leases were lost.
#[utoipa::path(
    post, path = "/v1/jobs/heartbeat", tag = "workers",
    request_body = HeartbeatManyRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Each lease extended, extended with a cancel asked for, or lost", body = HeartbeatMany),
    )
)]
pub async fn heartbeat_many(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HeartbeatManyRequest>,
) -> ApiResult<Json<HeartbeatMany>> {
    let mut leases = leases(body.jobs.iter().map(|j| (j.id, j.lease_token.as_str())))?;
    let mut seen = HashSet::with_capacity(leases.len());
    leases.retain(|l| seen.insert((l.id, l.token))); // the same lease twice: extended once
    let ttl = lease_ttl(body.lease_ttl)?;
    let statuses = state
        .store()
        .extend_leases(&body.worker, &leases, ttl)
        .await?;
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    let mut answer = HeartbeatMany {
        extended: Vec::new(),
        cancel_requested: Vec::new(),
        lease_lost: Vec::new(),
        lease_expires_at: expires,
    };
    for (lease, status) in leases.into_iter().zip(statuses) {
        match status {
            LeaseStatus::Extended => {
                state.leases().extended(lease, ttl);
                answer.extended.push(lease.id.0);
            }
            LeaseStatus::CancelRequested => {
                state.leases().extended(lease, ttl);
                answer.cancel_requested.push(lease.id.0);
            }
            LeaseStatus::Lost => {
                state.leases().finished(lease);
                answer.lease_lost.push(lease.id.0);
            }
        }
    }
    Ok(Json(answer))
}

/// The leases of a report, in order: 1..=1000 of them, each token well formed. A job may be
/// named more than once (each entry is answered for).
fn leases<'a>(items: impl ExactSizeIterator<Item = (i64, &'a str)>) -> ApiResult<Vec<Lease>> {
    let count = items.len();
    if !(1..=MAX_REPORT).contains(&count) {
        return Err(ApiError::invalid(
            "jobs",
            format!("holds {count} jobs; send 1..={MAX_REPORT} per request"),
        ));
    }
    items
        .enumerate()
        .map(|(index, (id, token))| {
            lease(id, token).map_err(|_| {
                ApiError::invalid(
                    &format!("jobs[{index}].lease_token"),
                    "is not a lease token; send the lease_token string the claim returned",
                )
            })
        })
        .collect()
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(complete_many))
        .routes(routes!(heartbeat_many))
}
