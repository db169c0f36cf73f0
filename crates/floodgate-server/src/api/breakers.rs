//! Named circuit breakers over HTTP: list them, admit a call, report its outcome, reset (see
//! [`crate::limits::breakers`]).

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::limits::breakers::{Report, Reported};
use crate::state::AppState;

/// A breaker with its live state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamedBreaker {
    /// Its name (`[breakers.NAME]`).
    pub name: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: String,
    /// Seconds in that state.
    pub since_seconds: f64,
    /// While open: seconds until it admits probes.
    pub retry_after_seconds: Option<f64>,
    /// The failure rate over the window, 0 to 1.
    pub failure_rate: f64,
    /// The calls in the window.
    pub window_calls: u64,
    /// Calls reported since start.
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow.
    pub slow: u64,
    /// Calls refused while open.
    pub rejected: u64,
    /// Calls admitted while half-open.
    pub half_open_probes: u32,
    /// What last opened it.
    pub last_failure: Option<String>,
}

/// The configured breakers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakerList {
    /// Every `[breakers.NAME]`, by name.
    pub breakers: Vec<NamedBreaker>,
}

/// Every configured breaker with its live state (this server's; with `redis_url` the servers
/// follow each other's opens and closes within about a second).
#[utoipa::path(
    get, path = "/v1/breakers", tag = "limits", operation_id = "list_breakers",
    responses(crate::error::Problems, (status = 200, description = "The breakers", body = BreakerList))
)]
pub async fn list_breakers(State(state): State<AppState>) -> Json<BreakerList> {
    let breakers = state
        .limits()
        .breakers()
        .snapshot()
        .into_iter()
        .map(|(s, spec)| NamedBreaker {
            name: s.name,
            state: s.state.as_str().to_owned(),
            since_seconds: s.in_state_for.as_secs_f64(),
            retry_after_seconds: s.retry_after.map(|d| d.as_secs_f64()),
            failure_rate: s.failure_rate,
            window_calls: s.window_calls,
            calls: s.calls,
            failures: s.failures,
            slow: s.slow,
            rejected: s.rejected,
            half_open_probes: spec.half_open_probes,
            last_failure: s.last_failure,
        })
        .collect();
    Json(BreakerList { breakers })
}

/// A call admitted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallAdmitted {
    /// Report the call's outcome to `POST /v1/breakers/{name}/calls/{call_id}`.
    pub call_id: String,
    /// The breaker.
    pub breaker: String,
    /// Whether it is a half-open probe.
    pub probe: bool,
    /// Unreported by then, it counts as failed.
    pub report_by: DateTime<Utc>,
}

/// Admits a call through the breaker, or refuses it with `503 BREAKER_OPEN` and
/// `Retry-After` while it is open. Make the call, then report how it went.
#[utoipa::path(
    post, path = "/v1/breakers/{name}/calls", tag = "limits", operation_id = "admit_call",
    params(("name" = String, Path, description = "The breaker", example = "payments")),
    responses(crate::error::Problems, (status = 200, description = "Admitted", body = CallAdmitted))
)]
pub async fn admit(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<CallAdmitted>> {
    let Path(name) = name?;
    let admitted = state.limits().breakers().admit(&name)?;
    Ok(Json(CallAdmitted {
        call_id: admitted.call_id,
        breaker: name,
        probe: admitted.probe,
        report_by: Utc::now()
            + chrono::Duration::from_std(admitted.deadline).unwrap_or(chrono::Duration::zero()),
    }))
}

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// It did its job.
    Success,
    /// It failed; counts towards opening.
    Failure,
    /// Counts neither way (a 429 from the dependency, a call the caller cancelled).
    Ignored,
    /// It succeeded, slowly: a slow call when the breaker tracks slowness (`slow_call`).
    Slow,
}

/// A call's report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallReport {
    /// How it went.
    pub outcome: CallOutcome,
    /// How long it took, in milliseconds, as the caller measured it: the breaker judges
    /// slowness from it.
    #[schema(minimum = 0, maximum = 86_400_000)]
    pub duration_ms: Option<f64>,
    /// What failed (kept as the breaker's last failure; at most 1,000 characters).
    #[schema(max_length = 1000)]
    pub error: Option<String>,
}

/// A breaker's state after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakerState {
    /// The breaker.
    pub breaker: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: String,
}

/// Reports a call's outcome. A call reported twice, or past its deadline (when it was counted
/// as failed), answers `409 CALL_EXPIRED`.
#[utoipa::path(
    post, path = "/v1/breakers/{name}/calls/{call_id}", tag = "limits", operation_id = "report_call",
    params(
        ("name" = String, Path, description = "The breaker", example = "payments"),
        ("call_id" = String, Path, description = "The call"),
    ),
    request_body = CallReport,
    responses(crate::error::Problems, (status = 200, description = "Recorded", body = BreakerState))
)]
pub async fn report(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(body): ApiJson<CallReport>,
) -> ApiResult<Json<BreakerState>> {
    let Path((name, call_id)) = path?;
    let duration = match body.duration_ms {
        None => None,
        Some(ms) if ms.is_finite() && (0.0..=86_400_000.0).contains(&ms) => {
            Some(Duration::from_secs_f64(ms / 1_000.0))
        }
        Some(_) => return Err(ApiError::invalid("duration_ms", "0 to 86400000")),
    };
    if body
        .error
        .as_ref()
        .is_some_and(|e| e.chars().count() > 1_000)
    {
        return Err(ApiError::invalid("error", "at most 1000 characters"));
    }
    let outcome = match body.outcome {
        CallOutcome::Success => Reported::Success,
        CallOutcome::Failure => Reported::Failure,
        CallOutcome::Ignored => Reported::Ignored,
        CallOutcome::Slow => Reported::Slow,
    };
    let report = Report {
        outcome,
        duration,
        error: body.error,
    };
    let after = state.limits().breakers().report(&name, &call_id, report)?;
    Ok(Json(BreakerState {
        breaker: name,
        state: after.as_str().to_owned(),
    }))
}

/// Closes the breaker and forgets its window (with `redis_url`, the other servers follow).
#[utoipa::path(
    post, path = "/v1/breakers/{name}/reset", tag = "limits", operation_id = "reset_breaker",
    params(("name" = String, Path, description = "The breaker", example = "payments")),
    responses(crate::error::Problems, (status = 200, description = "Closed", body = BreakerState))
)]
pub async fn reset(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<BreakerState>> {
    let Path(name) = name?;
    let after = state.limits().breakers().reset(&name)?;
    Ok(Json(BreakerState {
        breaker: name,
        state: after.as_str().to_owned(),
    }))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_breakers))
        .routes(routes!(admit))
        .routes(routes!(report))
        .routes(routes!(reset))
}
