//! The layers every request passes: a bound on requests in flight (a floodgate `Limiter`:
//! overload answers 503 with `Retry-After` at once instead of queueing without end), a request
//! timeout, and per-route request counts and latency histograms.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The routes `bound` leaves alone: health checks never wait behind the limit, and long polls
/// and event streams are bounded by their handlers (`max_long_polls`, `max_event_streams`).
const OWN_BOUNDS: &[&str] = &[
    "/health/live",
    "/health/ready",
    "/v1/queues/{queue}/claim",
    "/v1/dashboard/events",
];

/// Refuses a request when `max_concurrent_requests` are in flight (or the server is shutting
/// down), and ends one that runs past `request_timeout`.
pub(crate) async fn bound(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>();
    if route.is_some_and(|r| OWN_BOUNDS.contains(&r.as_str())) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.requests().try_acquire() else {
        let detail = if state.requests().is_closed() {
            "the server is shutting down; retry against another node or in a moment"
        } else {
            "too many requests in flight; retry in a moment"
        };
        return ApiError::new(Code::Overloaded, detail)
            .retry_after(1)
            .into_response();
    };
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            Code::Timeout,
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .retry_after(1)
        .into_response(),
    }
}

/// Counts requests per route, method and status, and records their latency.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("floodgate_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("floodgate_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
