//! Bearer tokens: with an `api_token` configured, every `/v1` route and `/metrics` needs
//! `Authorization: Bearer <token>`; a `read_only_token` is accepted on GET routes only. Tokens
//! are compared in constant time and never logged. Health and the OpenAPI document stay open.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::PUBLIC_PATHS;
use crate::error::{ApiError, Code};
use crate::state::AppState;

/// What a request's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    None,
    Read,
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

/// The middleware: lets a request through, or answers 401/403.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.config().auth_enabled() || PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    match access(&state, &request) {
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
