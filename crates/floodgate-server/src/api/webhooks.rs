//! Webhook destinations: re-enable one that a `410 Gone` disabled.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// A destination's state after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DestinationState {
    /// The destination (a host, or a configured name).
    pub destination: String,
    /// Whether deliveries to it are disabled.
    pub disabled: bool,
}

/// Delivers to the destination again after a `410 Gone` disabled it (its dead jobs can then
/// be retried with `POST /v1/jobs/{id}/retry`).
#[utoipa::path(
    post, path = "/v1/webhooks/destinations/{destination}/enable", tag = "webhooks",
    params(("destination" = String, Path, description = "A host, or a configured destination name")),
    responses(
        (status = 200, description = "Enabled", body = DestinationState),
        (status = 404, description = "Not disabled", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    destination: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DestinationState>> {
    let Path(destination) = destination?;
    if !state.deliverer().enable(&destination) {
        return Err(ApiError::new(
            Code::NotFound,
            format!("destination {destination:?} is not disabled"),
        ));
    }
    Ok(Json(DestinationState {
        destination,
        disabled: false,
    }))
}
