//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use floodgate_queue::{JobId, Store};

use super::model::Health;
use crate::state::AppState;

fn health(state: &AppState, reasons: Vec<String>) -> Health {
    Health {
        status: if reasons.is_empty() {
            "ok"
        } else {
            "unavailable"
        }
        .to_owned(),
        reasons,
        warnings: Vec::new(),
        backend: state.store().backend().to_owned(),
        uptime_seconds: state.uptime().as_secs(),
    }
}

/// The process is up.
#[utoipa::path(
    get, path = "/health/live", tag = "operations",
    responses(crate::error::Problems, (status = 200, description = "Alive", body = Health))
)]
pub async fn live(State(state): State<AppState>) -> Json<Health> {
    Json(health(&state, Vec::new()))
}

/// Ready to serve: the database answers (migrations ran when the store opened), and the
/// server is not shutting down. A relay whose broker cannot be reached is a warning, not a
/// reason: enqueues still succeed, and its jobs wait for the broker.
#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses(
        crate::error::Problems,
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready, with reasons", body = Health),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if state.shutting_down().is_cancelled() {
        reasons.push("shutting down".to_owned());
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store().job(JobId(0))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => reasons.push(format!("database: {e}")),
        Err(_) => reasons.push("database: no answer within 2 s".to_owned()),
    }
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut health = health(&state, reasons);
    health.warnings = state
        .deliveries()
        .iter()
        .filter_map(|d| d.unreachable())
        .collect();
    (status, Json(health)).into_response()
}

/// Prometheus text: the primitives', the queue's and the server's metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(crate::error::Problems, (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            "# metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses(crate::error::Problems, (status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = super::document().clone();
    // This server's batch bound, which its settings choose.
    use utoipa::openapi::{RefOr, schema::Schema};
    let batch = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("BatchRequest"));
    if let Some(RefOr::T(Schema::Object(batch))) = batch
        && let Some(RefOr::T(Schema::Array(jobs))) = batch.properties.get_mut("jobs")
    {
        jobs.max_items = Some(state.config().max_batch);
    }
    Json(doc)
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}
