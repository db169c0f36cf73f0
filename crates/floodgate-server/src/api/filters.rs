//! Operators' routes over many jobs at once: how many match a filter, retry or cancel every
//! one of them, and failures grouped by kind and error. The dashboard uses them; so can
//! scripts. Handlers only translate HTTP to store and `bulk` calls.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use floodgate_queue::Store;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use super::model::{Affected, FailureGroupView, FailureGroups, FailureQuery, JobCount, JobFilter};
use crate::bulk::{self, Action};
use crate::error::ApiResult;
use crate::state::AppState;

/// How many jobs match the filters (those of `GET /v1/jobs`).
#[utoipa::path(
    get, path = "/v1/jobs/count", tag = "jobs",
    params(JobFilter),
    responses(
        crate::error::Problems,
        (status = 200, description = "The count", body = JobCount),
    )
)]
pub async fn count(
    State(state): State<AppState>,
    query: Result<Query<JobFilter>, QueryRejection>,
) -> ApiResult<Json<JobCount>> {
    let Query(filter) = query?;
    let count = state.store().count(&filter.to_list()?).await?;
    Ok(Json(JobCount { count }))
}

/// Retries every `dead` and `cancelled` job matching the filters (a `state` filter naming
/// another state matches nothing). Confirm the count with `GET /v1/jobs/count` first.
#[utoipa::path(
    post, path = "/v1/jobs/retry", tag = "jobs",
    request_body = JobFilter,
    responses(
        crate::error::Problems,
        (status = 200, description = "How many jobs were retried", body = Affected),
    )
)]
pub async fn retry_matching(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<JobFilter>,
) -> ApiResult<Json<Affected>> {
    act(&state, Action::Retry, body).await
}

/// Cancels every `pending` and `failed` job matching the filters, and asks the `running`
/// ones to stop. Confirm the count with `GET /v1/jobs/count` first.
#[utoipa::path(
    post, path = "/v1/jobs/cancel", tag = "jobs",
    request_body = JobFilter,
    responses(
        crate::error::Problems,
        (status = 200, description = "How many jobs were cancelled (or asked to stop)", body = Affected),
    )
)]
pub async fn cancel_matching(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<JobFilter>,
) -> ApiResult<Json<Affected>> {
    act(&state, Action::Cancel, body).await
}

async fn act(state: &AppState, action: Action, body: JobFilter) -> ApiResult<Json<Affected>> {
    let filter = body;
    let list = filter.to_list()?;
    // Checked before the walk starts (a bad payload path is a 422, not 0), without a query.
    list.check_filter()?;
    let affected = bulk::apply(state.store(), state.sampler(), action, list).await?;
    Ok(Json(Affected { affected }))
}

/// Failed and dead jobs grouped by queue, kind and last error, biggest group first (at most
/// 200 groups): "412 failures: payments / connection refused" instead of 412 rows.
#[utoipa::path(
    get, path = "/v1/failures", tag = "jobs",
    params(FailureQuery),
    responses(crate::error::Problems, (status = 200, description = "The groups", body = FailureGroups))
)]
pub async fn failures(
    State(state): State<AppState>,
    query: Result<Query<FailureQuery>, QueryRejection>,
) -> ApiResult<Json<FailureGroups>> {
    let Query(q) = query?;
    let groups = state
        .store()
        .failure_groups(q.queue.as_deref(), q.kind.as_deref(), 200)
        .await?
        .into_iter()
        .map(|g| FailureGroupView {
            queue: g.queue,
            kind: g.kind,
            error: g.error,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
        })
        .collect();
    Ok(Json(FailureGroups { groups }))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(count))
        .routes(routes!(retry_matching))
        .routes(routes!(cancel_matching))
        .routes(routes!(failures))
}
