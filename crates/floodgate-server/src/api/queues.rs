//! Queue routes: counts per state, pause and resume.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use floodgate_queue::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::model::{QueueList, QueueView};
use crate::error::ApiResult;
use crate::state::AppState;

/// Every queue with its counts per state, whether it is paused, and the age of its oldest
/// runnable job, from a sample at most `queue_stats_max_age` old (`sampled_at` says when it
/// was taken), so the answer is fast however big the tables are.
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues",
    responses(crate::error::Problems, (status = 200, description = "The queues", body = QueueList))
)]
pub async fn list_queues(State(state): State<AppState>) -> ApiResult<Json<QueueList>> {
    let sample = state.sampler().sample().await?;
    Ok(Json(QueueList {
        queues: sample.queues.iter().cloned().map(QueueView::from).collect(),
        sampled_at: sample.taken_at.into(),
    }))
}

/// A queue's pause state after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paused {
    /// The queue.
    pub queue: String,
    /// Whether claims skip it now.
    pub paused: bool,
}

/// Stops claims from the queue (jobs running go on; enqueues are still accepted).
#[utoipa::path(
    post, path = "/v1/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses(crate::error::Problems, (status = 200, description = "Paused", body = Paused))
)]
pub async fn pause(
    State(state): State<AppState>,
    queue: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Paused>> {
    let Path(queue) = queue?;
    state.store().pause(&queue).await?;
    state.sampler().invalidate();
    Ok(Json(Paused {
        queue,
        paused: true,
    }))
}

/// Lets claims take from the queue again.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses(crate::error::Problems, (status = 200, description = "Resumed", body = Paused))
)]
pub async fn resume(
    State(state): State<AppState>,
    queue: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Paused>> {
    let Path(queue) = queue?;
    state.store().resume(&queue).await?;
    state.sampler().invalidate();
    Ok(Json(Paused {
        queue,
        paused: false,
    }))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_queues))
        .routes(routes!(pause))
        .routes(routes!(resume))
}
