//! The dashboard: its page and assets (embedded in the binary: no front-end build), its
//! overview, and the overview as a live stream of Server-Sent Events. The page asks for a
//! token when the server needs one and sends it with every API call; the stream is read with
//! `fetch` so that the token can go in a header.

use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;

use crate::auth::Access;
use crate::dashboard::{Overview, Snapshot};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// The page's files: path, content type, bytes. The script is ES modules, one per view or
/// concern, loaded by the browser as they import each other (no build step).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "js/main.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/main.js"),
    ),
    (
        "js/router.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/router.js"),
    ),
    (
        "js/api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/api.js"),
    ),
    (
        "js/events.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/events.js"),
    ),
    (
        "js/overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/overview.js"),
    ),
    (
        "js/jobs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/jobs.js"),
    ),
    (
        "js/job.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/job.js"),
    ),
    (
        "js/failures.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/failures.js"),
    ),
    (
        "js/actions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/actions.js"),
    ),
    (
        "js/dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/dom.js"),
    ),
    (
        "js/format.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/format.js"),
    ),
    (
        "js/state.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/js/state.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/uPlot.min.css"),
    ),
];

/// The page's Content-Security-Policy: scripts, styles and data from the server only, and
/// never inside a frame (its buttons act with the viewer's token, so they must not be framed).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        include_str!("../../assets/index.html"),
    )
        .into_response()
}

/// One of the page's files.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::new(Code::NotFound, format!("no asset {path:?}")).into_response(),
    }
}

fn access_name(access: Option<Extension<Access>>) -> &'static str {
    match access.map(|Extension(a)| a) {
        Some(Access::Admin) => "admin",
        _ => "read",
    }
}

/// The overview: every queue's counts, throughput and latency over the last 15 minutes,
/// limiters and breakers; `access` says whether the caller's token may act.
#[utoipa::path(
    get, path = "/v1/dashboard", tag = "dashboard",
    responses(crate::error::Problems, (status = 200, description = "The latest overview (at most a second old)", body = Overview))
)]
pub async fn overview(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
) -> ApiResult<Response> {
    let snapshot = state.dashboard().snapshot().await?;
    Ok(json_of(&snapshot, access_name(access)).into_response())
}

fn json_of(snapshot: &Snapshot, access: &str) -> impl IntoResponse + use<> {
    let body = if access == "admin" {
        snapshot.admin_json.clone()
    } else {
        snapshot.read_json.clone()
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// The overview as it changes: an `overview` event at once, then one a second (the same
/// computation feeds every subscriber). Ends when the server shuts down.
#[utoipa::path(
    get, path = "/v1/dashboard/events", tag = "dashboard",
    responses(crate::error::Problems, (status = 200, description = "`text/event-stream` of `overview` events, each an Overview", content_type = "text/event-stream"))
)]
pub async fn events(
    State(state): State<AppState>,
    access: Option<Extension<Access>>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // A stream holds a slot of its own (`max_event_streams`) for as long as it is open, never
    // one that enqueues and reports need.
    let slot = state.streams().try_acquire_owned().map_err(|_| {
        ApiError::new(
            Code::Overloaded,
            "too many dashboard event streams open; retry in a moment",
        )
        .retry_after(5)
    })?;
    // The first event is a full overview: computed now if the sampler has none yet.
    state.dashboard().snapshot().await?;
    let admin = access_name(access) == "admin";
    let receiver = state.dashboard().subscribe();
    let stop = state.shutting_down().clone();
    let stream = futures_util::stream::unfold(
        (receiver, stop, true, slot),
        move |(mut rx, stop, first, slot)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    _ = stop.cancelled() => return None,
                }
            }
            let snapshot = rx.borrow_and_update().clone()?;
            let json = if admin {
                snapshot.admin_json.clone()
            } else {
                snapshot.read_json.clone()
            };
            let event = Event::default().event("overview").data(&*json);
            Some((Ok(event), (rx, stop, false, slot)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

/// This module's routes: the page and its files (not in the API document), and the
/// dashboard's data (documented).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/", axum::routing::get(page))
        .route("/assets/{*path}", axum::routing::get(asset))
        .routes(routes!(overview))
        .routes(routes!(events))
}
