//! `floodgate serve`: the durable job queue over HTTP.
//!
//! Producers in any language enqueue with `POST /v1/jobs` (202 + a status URL to poll);
//! workers in any language claim with `POST /v1/queues/{q}/claim` and report with the lease
//! token (`complete`, `fail`, `snooze`, `heartbeat`), fenced like the Rust worker. Queues,
//! health, Prometheus metrics and an OpenAPI document complete it. Every error is an RFC 9457
//! problem document with a stable `code`.
//!
//! [`app`] builds the router over a [`state::AppState`]; tests drive it with
//! `tower::ServiceExt::oneshot`, no socket needed:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::body::Body;
//! use axum::http::Request;
//! use floodgate_server::{app, config::Config, state::AppState};
//! use tower::ServiceExt;
//!
//! let store = floodgate_queue::SqliteStore::in_memory().await?;
//! let state = AppState::new(store.into(), Config::default());
//! let response = app(state)
//!     .oneshot(
//!         Request::post("/v1/jobs")
//!             .header("content-type", "application/json")
//!             .body(Body::from(r#"{"kind": "email", "payload": {"to": "ada"}}"#))?,
//!     )
//!     .await?;
//! assert_eq!(response.status(), 202);
//! assert_eq!(response.headers()["location"], "/v1/jobs/1");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod batcher;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod delivery;
pub mod error;
pub mod groups;
mod hub;
mod layers;
pub mod leases;
pub mod limits;
pub mod relay;
pub mod sampler;
pub mod server;
pub mod state;
pub mod webhook;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The whole HTTP API over `state`, with its layers: auth, the bound on requests in flight,
/// the request timeout, the body limit and deadline, metrics, and problem documents for
/// unknown routes and methods.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    api::routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), auth::require_token))
        .layer(from_fn_with_state(state.clone(), layers::bound))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(state.clone(), layers::body_deadline))
        .layer(from_fn(layers::record))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!(
            "no route {}; see /openapi.json for the routes there are",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
