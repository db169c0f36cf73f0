//! Queue routes: counts per state, pause and resume.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use floodgate_queue::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{QueueList, QueueView};
use crate::error::ApiResult;
use crate::state::AppState;

/// Every queue with its counts per state, whether it is paused, and the age of its oldest
/// runnable job. Counts come from partial indexes and per-queue counters, so they stay fast on
/// big tables (see `BENCHMARKS.md`).
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues",
    responses((status = 200, description = "The queues", body = QueueList))
)]
pub async fn list_queues(State(state): State<AppState>) -> ApiResult<Json<QueueList>> {
    let queues = state.store().queue_stats().await?;
    Ok(Json(QueueList {
        queues: queues.into_iter().map(QueueView::from).collect(),
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
    responses((status = 200, description = "Paused", body = Paused))
)]
pub async fn pause(
    State(state): State<AppState>,
    queue: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Paused>> {
    let Path(queue) = queue?;
    state.store().pause(&queue).await?;
    Ok(Json(Paused {
        queue,
        paused: true,
    }))
}

/// Lets claims take from the queue again.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path, description = "The queue")),
    responses((status = 200, description = "Resumed", body = Paused))
)]
pub async fn resume(
    State(state): State<AppState>,
    queue: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Paused>> {
    let Path(queue) = queue?;
    state.store().resume(&queue).await?;
    Ok(Json(Paused {
        queue,
        paused: false,
    }))
}
