//! Webhook destinations: the disabled ones and every breaker, and re-enabling one that a
//! `410 Gone` disabled.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

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

/// Delivers to the destination again after a `410 Gone` disabled it: its waiting jobs are
/// claimed again (the one that got the 410 is dead; retry it with `POST /v1/jobs/{id}/retry`).
#[utoipa::path(
    post, path = "/v1/webhooks/destinations/{destination}/enable", tag = "webhooks",
    params(("destination" = String, Path, description = "A host, or a configured destination name")),
    responses(
        crate::error::Problems,
        (status = 200, description = "Enabled", body = DestinationState),
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    destination: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DestinationState>> {
    let Path(destination) = destination?;
    if !state.webhooks().enable(&destination).await? {
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

/// A destination disabled by a `410 Gone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DisabledDestination {
    /// The destination (a host, or a configured name).
    pub destination: String,
    /// What disabled it.
    pub reason: String,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// A destination's breaker (this node's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DestinationBreaker {
    /// The destination.
    pub destination: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: String,
    /// Seconds in that state.
    pub since_seconds: f64,
    /// While open: seconds until it lets a probe through.
    pub retry_after_seconds: Option<f64>,
    /// The error of the call that last opened it.
    pub last_failure: Option<String>,
}

/// The destinations that are not plain sailing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Destinations {
    /// Disabled destinations (shared by every node).
    pub disabled: Vec<DisabledDestination>,
    /// This node's breakers, one per destination it has delivered to recently.
    pub breakers: Vec<DestinationBreaker>,
}

/// Disabled destinations and this node's destination breakers.
#[utoipa::path(
    get, path = "/v1/webhooks/destinations", tag = "webhooks",
    responses(crate::error::Problems, (status = 200, description = "Disabled destinations and breakers", body = Destinations))
)]
pub async fn destinations(State(state): State<AppState>) -> ApiResult<Json<Destinations>> {
    let disabled = state
        .webhooks()
        .disabled()
        .await?
        .into_iter()
        .map(|g| DisabledDestination {
            destination: g.name,
            reason: g.reason,
            since: g.paused_at,
        })
        .collect();
    let breakers = state
        .webhooks()
        .health()
        .breakers
        .into_iter()
        .map(|b| DestinationBreaker {
            destination: b.name,
            state: b.state.as_str().to_owned(),
            since_seconds: b.in_state_for.as_secs_f64(),
            retry_after_seconds: b.retry_after.map(|d| d.as_secs_f64()),
            last_failure: b.last_failure,
        })
        .collect();
    Ok(Json(Destinations { disabled, breakers }))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(destinations))
        .routes(routes!(enable))
}
