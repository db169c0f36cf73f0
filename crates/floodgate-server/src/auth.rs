//! Bearer tokens: with an `api_token` configured, every `/v1` route and `/metrics` needs
//! `Authorization: Bearer <token>`; a `read_only_token` is accepted on GET routes only. Tokens
//! are compared in constant time and never logged. Health, the OpenAPI document and the
//! dashboard's page and assets (`/`, `/assets/*`: the page asks for a token and sends it with
//! its API calls) stay open.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::PUBLIC_PATHS;
use crate::error::{ApiError, Code};
use crate::state::AppState;

/// What a request's token allows (handlers find it in the request's extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token, or a wrong one.
    None,
    /// The read-only token: GET requests only.
    Read,
    /// The API token, or no token configured: everything.
    Admin,
}

fn access(state: &AppState, request: &Request) -> Access {
    let config = state.config();
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Access::None;
    };
    let matches = |t: &Option<String>| {
        t.as_ref()
            .is_some_and(|t| constant_time_eq::constant_time_eq(t.as_bytes(), given.as_bytes()))
    };
    if matches(&config.api_token) {
        Access::Admin
    } else if matches(&config.read_only_token) {
        Access::Read
    } else {
        Access::None
    }
}

/// Whether `path` is open to all: health, the OpenAPI document, and the dashboard's page and
/// assets (the page asks for a token and sends it with its API calls).
fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || path == "/" || path.starts_with("/assets/")
}

/// The middleware: lets a request through, or answers 401/403.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.config().auth_enabled() {
        request.extensions_mut().insert(Access::Admin);
        return next.run(request).await;
    }
    let access = access(&state, &request);
    request.extensions_mut().insert(access);
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    match access {
        Access::Admin => next.run(request).await,
        Access::Read if reading => next.run(request).await,
        Access::Read => ApiError::new(
            Code::Forbidden,
            "the read-only token allows GET requests only; use the API token to change things",
        )
        .into_response(),
        Access::None => {
            let mut response = ApiError::new(
                Code::Unauthorized,
                "send `Authorization: Bearer <token>` with the server's API token",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}
