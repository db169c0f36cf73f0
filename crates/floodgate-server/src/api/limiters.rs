//! Named concurrency limits over HTTP: list them, change a limit, and acquire, heartbeat and
//! release leased permits (see [`crate::limits::permits`]).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use crate::error::{ApiError, ApiResult, Code};
use crate::limits::Scope;
use crate::limits::config::Policy;
use crate::limits::permits::{Ask, Granted, LimiterSnapshot};
use crate::state::AppState;

/// A limiter with its live counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamedLimiter {
    /// Its name (`[limiters.NAME]`).
    pub name: String,
    /// `local` (this server) or `fleet` (every server sharing `redis_url`).
    pub scope: Scope,
    /// Permits at once (fleet-wide: the limit in force, a run-time change included).
    pub limit: usize,
    /// Permits held through this server now.
    pub held_here: usize,
    /// Permits held across the fleet now (fleet scope, when Redis answered).
    pub held_fleet: Option<u32>,
    /// Callers waiting on this server now.
    pub waiting: usize,
    /// Callers that may wait on this server at once.
    pub max_queue: usize,
    /// The longest wait a request may ask for, in seconds.
    pub max_wait: f64,
    /// A permit's lease without a heartbeat, in seconds, unless the request names one.
    pub lease_ttl: f64,
    /// Permits given on this server since start.
    pub acquired: u64,
    /// Requests refused because the queue was full.
    pub queue_full: u64,
    /// Permits taken back because their lease ran out.
    pub expired: u64,
    /// Fleet scope: what happens when Redis cannot answer.
    pub failure_policy: Option<Policy>,
}

impl From<LimiterSnapshot> for NamedLimiter {
    fn from(s: LimiterSnapshot) -> Self {
        NamedLimiter {
            scope: s.scope,
            limit: s.limit,
            held_here: s.held_here,
            held_fleet: s.held_fleet,
            waiting: s.waiting,
            max_queue: s.spec.max_queue,
            max_wait: s.spec.max_wait,
            lease_ttl: s.spec.lease_ttl,
            acquired: s.granted,
            queue_full: s.queue_full,
            expired: s.expired,
            failure_policy: (s.scope == Scope::Fleet).then_some(s.spec.failure_policy),
            name: s.name,
        }
    }
}

/// The configured limiters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimiterList {
    /// Every `[limiters.NAME]`, by name.
    pub limiters: Vec<NamedLimiter>,
}

/// Every configured limiter with its live counts.
#[utoipa::path(
    get, path = "/v1/limiters", tag = "limits", operation_id = "list_limiters",
    responses(crate::error::Problems, (status = 200, description = "The limiters", body = LimiterList))
)]
pub async fn list_limiters(State(state): State<AppState>) -> Json<LimiterList> {
    let limiters = state.limits().permits().snapshot().await;
    Json(LimiterList {
        limiters: limiters.into_iter().map(NamedLimiter::from).collect(),
    })
}

/// A new limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    /// Permits at once, 1 to 1,000,000,000. Fleet-wide, it holds for every server until the
    /// configuration's own limit changes.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max_concurrency: usize,
}

/// Changes a limit at run time (the API token). Growing serves waiters at once; shrinking
/// never revokes a held permit.
#[utoipa::path(
    put, path = "/v1/limiters/{name}", tag = "limits", operation_id = "set_limit",
    params(("name" = String, Path, description = "The limiter", example = "llm")),
    request_body = SetLimit,
    responses(crate::error::Problems, (status = 200, description = "The limiter after the change", body = NamedLimiter))
)]
pub async fn set_limit(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<SetLimit>,
) -> ApiResult<Json<NamedLimiter>> {
    let Path(name) = name?;
    state
        .limits()
        .permits()
        .set_limit(&name, body.max_concurrency)
        .await?;
    let view = state
        .limits()
        .permits()
        .snapshot()
        .await
        .into_iter()
        .find(|s| s.name == name)
        .map(NamedLimiter::from)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no limiter is named {name:?}")))?;
    Ok(Json(view))
}

/// A request for a permit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermitRequest {
    /// 1 (lowest) to 10 (highest), default 5: waiters are served highest first.
    #[schema(minimum = 1, maximum = 10)]
    pub priority: Option<u8>,
    /// Seconds to wait for a permit (default 0: answer at once); a wait longer than the
    /// limiter's `max_wait` is cut to it.
    #[schema(minimum = 0, maximum = 300)]
    pub wait: Option<f64>,
    /// Seconds the permit lives without a heartbeat, 1 to 3600 (default: the limiter's).
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_ttl: Option<f64>,
    /// Who holds it, for the server's log (at most 200 characters).
    #[schema(max_length = 200)]
    pub holder: Option<String>,
}

/// A permit given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PermitGranted {
    /// Its id: heartbeat it with `POST /v1/permits/{id}/heartbeat`, release it with
    /// `DELETE /v1/permits/{id}`.
    pub permit_id: String,
    /// The limiter.
    pub limiter: String,
    /// `local` or `fleet`.
    pub scope: Scope,
    /// When it is taken back unless heartbeated.
    pub lease_expires_at: DateTime<Utc>,
    /// Its lease, in seconds.
    pub lease_ttl: f64,
    /// `false` when Redis could not be reached and the open policy let it through: it counts
    /// on this server only.
    pub enforced: bool,
}

fn expires(lease: std::time::Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero())
}

/// Waits up to `wait` seconds in the limiter's priority queue for a permit. A request that
/// waits holds a long-poll slot (`max_long_polls`), not a request slot; with none free it
/// tries once, at once. A client that disconnects while waiting leaves no permit behind.
#[utoipa::path(
    post, path = "/v1/limiters/{name}/permits", tag = "limits", operation_id = "acquire_permit",
    params(("name" = String, Path, description = "The limiter", example = "llm")),
    request_body(content = PermitRequest, description = "Optional"),
    responses(
        crate::error::Problems,
        (status = 201, description = "A permit; `Location` names it", body = PermitGranted),
    )
)]
pub async fn acquire(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Option<ApiJson<PermitRequest>>,
) -> ApiResult<Response> {
    let Path(name) = name?;
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    if request
        .holder
        .as_ref()
        .is_some_and(|h| h.chars().count() > 200)
    {
        return Err(ApiError::invalid("holder", "at most 200 characters"));
    }
    let mut ask = Ask {
        priority: request.priority,
        wait: request.wait,
        lease_ttl: request.lease_ttl,
    };
    let _slot = if ask.wait.is_some_and(|w| w > 0.0) {
        match state.long_polls().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                ask.wait = Some(0.0);
                super::workers::request_slot(&state)?
            }
        }
    } else {
        super::workers::request_slot(&state)?
    };
    let Granted {
        permit_id,
        lease,
        scope,
        enforced,
    } = state.limits().permits().acquire(&name, ask).await?;
    if let Some(holder) = &request.holder {
        tracing::debug!(limiter = %name, %holder, %permit_id, "permit given");
    }
    let location = HeaderValue::from_str(&format!("/v1/permits/{permit_id}"))
        .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    let body = PermitGranted {
        permit_id,
        limiter: name,
        scope,
        lease_expires_at: expires(lease),
        lease_ttl: lease.as_secs_f64(),
        enforced,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// A heartbeat's lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermitHeartbeat {
    /// Seconds from now, 1 to 3600 (default: the permit's own lease).
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_ttl: Option<f64>,
}

/// A permit's lease after a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PermitLease {
    /// The permit.
    pub permit_id: String,
    /// When it is taken back unless heartbeated again.
    pub lease_expires_at: DateTime<Utc>,
}

/// Extends a permit's lease. A permit whose lease ran out answers `409 PERMIT_LOST`: it no
/// longer counts, so stop the work it guarded or acquire another.
#[utoipa::path(
    post, path = "/v1/permits/{id}/heartbeat", tag = "limits", operation_id = "heartbeat_permit",
    params(("id" = String, Path, description = "The permit")),
    request_body(content = PermitHeartbeat, description = "Optional"),
    responses(crate::error::Problems, (status = 200, description = "Extended", body = PermitLease))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Option<ApiJson<PermitHeartbeat>>,
) -> ApiResult<Json<PermitLease>> {
    let Path(permit_id) = id?;
    let ttl = body.and_then(|ApiJson(b)| b.lease_ttl);
    let lease = state.limits().permits().heartbeat(&permit_id, ttl)?;
    Ok(Json(PermitLease {
        permit_id,
        lease_expires_at: expires(lease),
    }))
}

/// Releases a permit (again: still 204). One whose lease ran out answers `409 PERMIT_LOST` and
/// frees nothing: its slot was taken back already.
#[utoipa::path(
    delete, path = "/v1/permits/{id}", tag = "limits", operation_id = "release_permit",
    params(("id" = String, Path, description = "The permit")),
    responses(crate::error::Problems, (status = 204, description = "Released"))
)]
pub async fn release(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(permit_id) = id?;
    state.limits().permits().release(&permit_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_limiters))
        .routes(routes!(set_limit))
        .routes(routes!(acquire))
        .routes(routes!(heartbeat))
        .routes(routes!(release))
}
