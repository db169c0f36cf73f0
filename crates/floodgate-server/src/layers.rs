//! The layers every request passes: a bound on requests in flight (a floodgate `Limiter`:
//! overload answers 503 with `Retry-After` at once instead of queueing without end), a request
//! timeout, a deadline on the request's body, and per-route request counts and latency
//! histograms.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::BoxError;
use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tracing::Instrument;

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The routes `bound` leaves alone: health checks never wait behind the limit, and long polls
/// and event streams are bounded by their handlers (`max_long_polls`, `max_event_streams`).
const OWN_BOUNDS: &[&str] = &[
    "/health/live",
    "/health/ready",
    "/v1/queues/{queue}/claim",
    "/v1/limiters/{name}/permits",
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

/// Records each request's count and duration per route, gives it an id (the client's
/// `x-request-id` if it sent a usable one, else a new one) that every log line of the request
/// carries and the response echoes, and marks every response `nosniff`.
pub(crate) async fn record(mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned);
    let id_value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID, id_value.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, %route, status, "answered with a server error");
    }
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, id_value);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    metrics::counter!("floodgate_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("floodgate_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The header field naming a request in the server's log.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Answers 408 (and closes the connection) when a request's body has not arrived whole within
/// `request_body_timeout` of its head: a body sent a byte at a time cannot hold a handler.
pub(crate) async fn body_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let limit = state.config().request_body_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    let mut response = ApiError::new(
        Code::BodyTimeout,
        format!(
            "the request body did not arrive within {} s (request_body_timeout); send it whole \
             and at once",
            limit.as_secs()
        ),
    )
    .into_response();
    // The rest of the body is never read: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline passes.
struct Deadline {
    body: Body,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

/// The error a body past its deadline reads as.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl HttpBody for Deadline {
    type Data = axum::body::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.sleep.as_mut().poll(cx));
        this.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err(BodyTimedOut.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
