//! Workers in any language: claim (with long polling on the store's wake-ups), heartbeat,
//! and the lease-fenced reports (complete, fail, snooze). A report whose lease token no longer
//! holds the job changes nothing and answers `409 LEASE_LOST`.

use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use floodgate::retry::RetryPolicy;
use floodgate_queue::{Claim, JobId, JobState, Lease, LeaseStatus, LeaseToken, Store};

use super::json::ApiJson;
use super::model::{
    ApiState, ClaimRequest, Claimed, ClaimedJob, CompleteRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, JobView, Reported, SnoozeRequest,
};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// The longest long poll.
const MAX_WAIT: u64 = 30;
const DEFAULT_LEASE: u64 = 300;

/// Claims up to `limit` runnable jobs of the queue in one statement, each with a lease token.
/// With `wait`, an empty queue holds the request (up to 30 s) and answers as soon as a job
/// arrives.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/claim", tag = "workers",
    params(("queue" = String, Path, description = "The queue to claim from")),
    request_body = ClaimRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "The claimed jobs (possibly none)", body = Claimed),
    )
)]
pub async fn claim(
    State(state): State<AppState>,
    queue: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<ClaimRequest>,
) -> ApiResult<Response> {
    let Path(queue) = queue?;
    let mut r = body;
    // A long poll waits in a slot of its own (`max_long_polls`), never in one that enqueues
    // and reports need; with none free it claims once, at once, and says when to come back.
    // A claim that does not wait is an ordinary request.
    let (_slot, busy) = if r.wait.unwrap_or(0) > 0 {
        match state.long_polls().try_acquire_owned() {
            Ok(slot) => (slot, false),
            Err(_) => {
                r.wait = Some(0);
                (request_slot(&state)?, true)
            }
        }
    } else {
        (request_slot(&state)?, false)
    };
    let claimed = claim_for(&state, queue, r).await?;
    let mut response = claimed.into_response();
    if busy {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    Ok(response)
}

/// A slot of `max_concurrent_requests`, or the overload problem.
pub(crate) fn request_slot(state: &AppState) -> ApiResult<floodgate::OwnedPermit> {
    state.requests().try_acquire_owned().map_err(|_| {
        ApiError::new(
            Code::Overloaded,
            "too many requests in flight; retry in a moment",
        )
        .retry_after(1)
    })
}

/// The claim itself, long poll included.
async fn claim_for(state: &AppState, queue: String, r: ClaimRequest) -> ApiResult<Json<Claimed>> {
    if !(1..=1_000).contains(&r.limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("{} is outside 1..=1000", r.limit),
        ));
    }
    let ttl = lease_ttl(r.lease_ttl)?;
    let wait = r.wait.unwrap_or(0);
    if wait > MAX_WAIT {
        return Err(ApiError::invalid(
            "wait",
            format!("{wait} s is over the longest long poll, {MAX_WAIT} s"),
        ));
    }
    // Paused groups (a disabled webhook destination, say) stay pending for HTTP workers too.
    let (paused, _) = state.paused_groups().names().await;
    let claim = Claim::new(r.worker, r.limit)
        .queues([queue])
        .kinds(r.kinds)
        .lease_ttl(ttl)
        .skip_groups(
            paused
                .iter()
                .take(floodgate_queue::MAX_SKIP_GROUPS)
                .cloned(),
        );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        // Subscribe before claiming, so a job enqueued in between wakes this request.
        let mut wakeups = state.hub().subscribe();
        let jobs = state.store().claim(&claim).await?;
        let done = !jobs.is_empty()
            || wait == 0
            || tokio::time::Instant::now() >= deadline
            || state.shutting_down().is_cancelled();
        if done {
            state
                .leases()
                .claimed(jobs.iter().filter_map(floodgate_queue::Job::lease), ttl);
            let jobs = jobs
                .into_iter()
                .map(|job| ClaimedJob {
                    lease_token: job.lease_token.map(|t| t.0.to_string()).unwrap_or_default(),
                    job: JobView::from(job),
                })
                .collect();
            return Ok(Json(Claimed { jobs }));
        }
        tokio::select! {
            _ = wakeups.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutting_down().cancelled() => {}
        }
    }
}

/// Extends the lease; says whether cancellation was asked for.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/heartbeat", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = HeartbeatRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Extended", body = HeartbeatResponse),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    ApiJson(body): ApiJson<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let Path(id) = id?;
    let r = body;
    let lease = lease(id, &r.lease_token)?;
    let ttl = lease_ttl(r.lease_ttl)?;
    let worker = match &r.worker {
        Some(w) => w.clone(),
        None => match state
            .store()
            .job(lease.id)
            .await?
            .and_then(|j| j.lease_owner)
        {
            Some(owner) => owner,
            None => return Err(lost(lease.id)),
        },
    };
    let status = state.store().extend_leases(&worker, &[lease], ttl).await?;
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    match status.first() {
        Some(status @ (LeaseStatus::Extended | LeaseStatus::CancelRequested)) => {
            state.leases().extended(lease, ttl);
            Ok(Json(HeartbeatResponse {
                cancel_requested: matches!(status, LeaseStatus::CancelRequested),
                lease_expires_at: expires,
            }))
        }
        _ => {
            // A wrong worker name is not a lost lease: say so, and keep the lease.
            if r.worker.is_some()
                && let Some(job) = state.store().job(lease.id).await?
                && job.lease_token == Some(lease.token)
            {
                return Err(ApiError::invalid(
                    "worker",
                    format!(
                        "job {} is held by {:?}, not {worker:?}; send the name the claim used (or \
                         leave it out)",
                        lease.id,
                        job.lease_owner.unwrap_or_default()
                    ),
                ));
            }
            state.leases().finished(lease);
            Err(lost(lease.id))
        }
    }
}

/// Marks the job succeeded with its result.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/complete", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = CompleteRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Succeeded", body = Reported),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> ApiResult<Json<Reported>> {
    let Path(id) = id?;
    let r = body;
    let lease = lease(id, &r.lease_token)?;
    if let Some(result) = &r.result {
        // Checked here so a bad result fails alone, not the completion group it would join.
        floodgate_queue::Completion::check_result(result)?;
    }
    let written = state
        .completer()
        .complete(floodgate_queue::Completion {
            lease,
            result: r.result,
        })
        .await;
    state.leases().finished(lease);
    if !written? {
        return Err(floodgate_queue::StoreError::LeaseLost { id: lease.id }.into());
    }
    Ok(Json(Reported {
        id: lease.id.0,
        state: ApiState::Succeeded,
    }))
}

/// Records a failed attempt: retried later (after `retry_in`, or by exponential backoff), or
/// dead when `permanent` or out of attempts.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/fail", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = FailRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Will retry, or dead", body = Reported),
    )
)]
pub async fn fail(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    ApiJson(body): ApiJson<FailRequest>,
) -> ApiResult<Json<Reported>> {
    let Path(id) = id?;
    let r = body;
    let lease = lease(id, &r.lease_token)?;
    let store = state.store();
    let written = if r.permanent {
        store.dead(lease, &r.error).await.map(|()| JobState::Dead)
    } else {
        let delay = match r.retry_in {
            Some(s) => Duration::from_secs(s.min(366 * 24 * 3600)),
            None => {
                let job = store.job(lease.id).await?.ok_or_else(|| lost(lease.id))?;
                let elapsed = (Utc::now() - job.created_at).to_std().unwrap_or_default();
                floodgate_queue::worker::default_backoff()
                    .next_delay(job.attempt, elapsed, None)
                    .unwrap_or(Duration::from_secs(3600))
            }
        };
        let retry_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        store.fail(lease, &r.error, retry_at).await
    };
    state.leases().finished(lease);
    let state = match written? {
        JobState::Dead => ApiState::Dead,
        JobState::Cancelled => ApiState::Cancelled,
        _ => ApiState::FailedWillRetry,
    };
    Ok(Json(Reported {
        id: lease.id.0,
        state,
    }))
}

/// Puts the job back to run again after `delay` seconds, without spending the attempt.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/snooze", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = SnoozeRequest,
    responses(
        crate::error::Problems,
        (status = 200, description = "Pending again", body = Reported),
    )
)]
pub async fn snooze(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    ApiJson(body): ApiJson<SnoozeRequest>,
) -> ApiResult<Json<Reported>> {
    let Path(id) = id?;
    let r = body;
    let lease = lease(id, &r.lease_token)?;
    let delay = Duration::from_secs(r.delay.min(366 * 24 * 3600));
    let until = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let written = state.store().snooze(lease, until).await;
    state.leases().finished(lease);
    written?;
    let api_state = if delay.is_zero() {
        ApiState::Pending
    } else {
        ApiState::Scheduled
    };
    Ok(Json(Reported {
        id: lease.id.0,
        state: api_state,
    }))
}

/// The lease named by the path's id and the body's token.
pub(crate) fn lease(id: i64, token: &str) -> ApiResult<Lease> {
    let token: i64 = token.parse().map_err(|_| {
        ApiError::invalid(
            "lease_token",
            "is not a lease token; send the lease_token string the claim returned",
        )
    })?;
    Ok(Lease {
        id: JobId(id),
        token: LeaseToken(token),
    })
}

/// The lease length asked for (default 300 s), or the problem naming `lease_ttl`.
pub(crate) fn lease_ttl(secs: Option<u64>) -> ApiResult<Duration> {
    let secs = secs.unwrap_or(DEFAULT_LEASE);
    if !(1..=3_600).contains(&secs) {
        return Err(ApiError::invalid(
            "lease_ttl",
            format!("{secs} s is outside 1..=3600"),
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn lost(id: JobId) -> ApiError {
    ApiError::new(
        Code::LeaseLost,
        format!(
            "job {id} is no longer running under this lease token (the lease expired and the job \
             was taken back, or it was finished); nothing was written: stop working on it"
        ),
    )
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(complete))
        .routes(routes!(fail))
        .routes(routes!(snooze))
}
