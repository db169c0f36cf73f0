//! The one error type of the HTTP API: every failure is an RFC 9457 problem document
//! (`application/problem+json`) with a stable `code` a client can branch on and a `detail`
//! that says what to fix. Internal errors are logged in full and answered without details.
//!
//! ```
//! use axum::response::IntoResponse;
//! use floodgate_server::error::{ApiError, Code};
//!
//! let response = ApiError::new(Code::NotFound, "job 42 does not exist").into_response();
//! assert_eq!(response.status(), 404);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floodgate_queue::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The stable error codes of the API (the `code` member of every problem document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// The body is not valid JSON.
    MalformedJson,
    /// An object in the body names a member twice.
    DuplicateMember,
    /// A field is missing, has the wrong type, or is out of range.
    ValidationFailed,
    /// No such job, queue or route.
    NotFound,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// The job is not in a state the operation applies to.
    InvalidState,
    /// The lease token no longer holds the job: nothing was written.
    LeaseLost,
    /// The idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// The payload or body is over the configured limit.
    PayloadTooLarge,
    /// No or wrong bearer token.
    Unauthorized,
    /// The token is valid but may not do this (a read-only token on a mutating route).
    Forbidden,
    /// The server is at its limit of requests in flight, or shutting down: retry later.
    Overloaded,
    /// The request took longer than the server's request timeout.
    Timeout,
    /// The request's body did not arrive whole within the server's `request_body_timeout`.
    BodyTimeout,
    /// The database could not be reached.
    DatabaseUnavailable,
    /// A limiter's wait queue is full: retry later.
    QueueFull,
    /// No permit was free within the wait asked for.
    AcquireTimeout,
    /// A fleet-wide limiter cannot reach Redis and its failure policy is closed.
    LimiterUnavailable,
    /// The permit's lease ran out (or it was released): it no longer counts; acquire another.
    PermitLost,
    /// Over a rate limit: retry after `Retry-After`.
    RateLimited,
    /// A fleet-wide rate limit cannot reach Redis and its failure policy is closed.
    RateLimitUnavailable,
    /// The circuit breaker is open: retry after `Retry-After`.
    BreakerOpen,
    /// The call was reported already, or its deadline passed and it counted as failed.
    CallExpired,
    /// Something failed inside the server (details are in its log).
    Internal,
}

impl Code {
    /// The HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::MalformedJson | Code::DuplicateMember => StatusCode::BAD_REQUEST,
            Code::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::InvalidState | Code::LeaseLost | Code::PermitLost | Code::CallExpired => {
                StatusCode::CONFLICT
            }
            Code::QueueFull | Code::AcquireTimeout | Code::RateLimited => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Code::LimiterUnavailable | Code::RateLimitUnavailable | Code::BreakerOpen => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::Overloaded | Code::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Code::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Code::MalformedJson => "Malformed JSON",
            Code::DuplicateMember => "Duplicate member",
            Code::ValidationFailed => "Validation failed",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::InvalidState => "Invalid state",
            Code::LeaseLost => "Lease lost",
            Code::IdempotencyKeyReused => "Idempotency key reused",
            Code::PayloadTooLarge => "Payload too large",
            Code::Unauthorized => "Unauthorized",
            Code::Forbidden => "Forbidden",
            Code::Overloaded => "Overloaded",
            Code::Timeout => "Timeout",
            Code::BodyTimeout => "Request body timeout",
            Code::DatabaseUnavailable => "Database unavailable",
            Code::QueueFull => "Queue full",
            Code::AcquireTimeout => "Acquire timeout",
            Code::LimiterUnavailable => "Limiter unavailable",
            Code::PermitLost => "Permit lost",
            Code::RateLimited => "Rate limited",
            Code::RateLimitUnavailable => "Rate limit unavailable",
            Code::BreakerOpen => "Breaker open",
            Code::CallExpired => "Call expired",
            Code::Internal => "Internal error",
        }
    }
}

/// An RFC 9457 problem document, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:floodgate:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code to branch on.
    pub code: Code,
    /// What went wrong in this request, and what to fix.
    pub detail: String,
}

/// The problems any route may answer, declared once and added to every route of the API
/// document: each is an RFC 9457 document whose `code` says which.
#[derive(utoipa::IntoResponses)]
pub enum Problems {
    /// `MALFORMED_JSON`, `DUPLICATE_MEMBER`, or a path parameter of the wrong type.
    #[response(
        status = 400,
        description = "The request cannot be read",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// `UNAUTHORIZED`: no token, or a wrong one, while tokens are configured.
    #[response(
        status = 401,
        description = "A token is needed",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// `FORBIDDEN`: a read-only token on a route that changes something.
    #[response(
        status = 403,
        description = "The token may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// `NOT_FOUND`: no such job, queue, destination or route.
    #[response(
        status = 404,
        description = "Not found",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// `BODY_TIMEOUT`: the body did not arrive within `request_body_timeout`.
    #[response(
        status = 408,
        description = "The body came too slowly",
        content_type = "application/problem+json"
    )]
    BodyTimeout(Problem),
    /// `INVALID_STATE`, `LEASE_LOST`, `PERMIT_LOST` or `CALL_EXPIRED`.
    #[response(
        status = 409,
        description = "Not in a state the operation applies to",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    /// `PAYLOAD_TOO_LARGE`: past `max_body_bytes` or `max_payload_bytes`.
    #[response(
        status = 413,
        description = "Too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// `VALIDATION_FAILED` (a field out of range, naming it) or `IDEMPOTENCY_KEY_REUSED`.
    #[response(
        status = 422,
        description = "A field is invalid",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// `RATE_LIMITED`, `QUEUE_FULL` or `ACQUIRE_TIMEOUT`, with `Retry-After`.
    #[response(
        status = 429,
        description = "Over a limit; retry after `Retry-After`",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
    /// `INTERNAL`: a bug; the server's log has it.
    #[response(
        status = 500,
        description = "An internal error",
        content_type = "application/problem+json"
    )]
    Internal(Problem),
    /// `OVERLOADED`, `TIMEOUT`, `DATABASE_UNAVAILABLE`, `LIMITER_UNAVAILABLE`,
    /// `RATE_LIMIT_UNAVAILABLE` or `BREAKER_OPEN`, with `Retry-After`.
    #[response(
        status = 503,
        description = "Unavailable for now; retry after `Retry-After`",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// An API failure; answered as a [`Problem`].
#[derive(Debug, Clone)]
pub struct ApiError {
    code: Code,
    detail: String,
    retry_after: Option<u64>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `code` and a `detail` that says what to fix.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header field to the response (a rate limit's `RateLimit`, say).
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A validation failure of `field`.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::new(Code::ValidationFailed, format!("{field}: {reason}"))
    }

    /// Adds `Retry-After: seconds` to the response.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Its code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// Its detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let code_name = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = Problem {
            kind: format!("urn:floodgate:problem:{}", code_name.to_lowercase()),
            title: self.code.title().to_owned(),
            status: status.as_u16(),
            code: self.code,
            detail: self.detail,
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
            StoreError::PayloadTooLarge { .. } => {
                ApiError::new(Code::PayloadTooLarge, e.to_string())
            }
            StoreError::NotFound { .. } => ApiError::new(Code::NotFound, e.to_string()),
            StoreError::InvalidState { .. } => ApiError::new(Code::InvalidState, e.to_string()),
            StoreError::LeaseLost { .. } => ApiError::new(Code::LeaseLost, e.to_string()),
            StoreError::Open { .. } | StoreError::Database(_) => {
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    Code::DatabaseUnavailable,
                    "the database failed or could not be reached; retry later",
                )
                .retry_after(1)
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    Code::Internal,
                    "an internal error occurred; see the server log",
                )
            }
        }
    }
}

impl From<crate::limits::LimitError> for ApiError {
    fn from(e: crate::limits::LimitError) -> Self {
        use crate::limits::LimitError as L;
        let detail = e.to_string();
        match e {
            L::Unknown { .. } | L::NoSuchId(_) => ApiError::new(Code::NotFound, detail),
            L::Invalid(field, reason) => ApiError::invalid(field, reason),
            L::QueueFull(_) => ApiError::new(Code::QueueFull, detail).retry_after(1),
            // After a wait spent in full, ask again at once; with no wait, in a moment.
            L::AcquireTimeout(waited) => {
                let again = if waited > 0.0 { 0 } else { 1 };
                ApiError::new(Code::AcquireTimeout, detail).retry_after(again)
            }
            L::LimiterUnavailable(_) => {
                ApiError::new(Code::LimiterUnavailable, detail).retry_after(1)
            }
            L::RateLimitUnavailable(_) => {
                ApiError::new(Code::RateLimitUnavailable, detail).retry_after(1)
            }
            L::PermitLost(_) => ApiError::new(Code::PermitLost, detail),
            L::CallExpired(_) => ApiError::new(Code::CallExpired, detail),
            L::BreakerOpen { retry_after, .. } => {
                // Forced open: no end is known; a minute is a sensible pause.
                let secs = retry_after.map_or(60, |d| d.as_secs_f64().ceil().max(1.0) as u64);
                ApiError::new(Code::BreakerOpen, detail).retry_after(secs)
            }
            L::Closing => ApiError::new(Code::Overloaded, detail).retry_after(1),
        }
    }
}

impl From<crate::bulk::BulkError> for ApiError {
    fn from(e: crate::bulk::BulkError) -> Self {
        match e {
            crate::bulk::BulkError::Store(e) => e.into(),
            stopped => {
                tracing::error!(error = %stopped, "bulk action");
                ApiError::new(
                    Code::Internal,
                    "the bulk action stopped; see the server log",
                )
            }
        }
    }
}

impl From<crate::batcher::GroupError> for ApiError {
    fn from(e: crate::batcher::GroupError) -> Self {
        use crate::batcher::GroupError;
        match e {
            GroupError::Unavailable(_) => ApiError::new(
                Code::DatabaseUnavailable,
                "the database failed or could not be reached; retry later",
            )
            .retry_after(1),
            GroupError::Stopped => ApiError::new(
                Code::Overloaded,
                "the server is shutting down; retry against another node or in a moment",
            )
            .retry_after(1),
            GroupError::Failed(_) => ApiError::new(
                Code::Internal,
                "an internal error occurred; see the server log",
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::new(Code::ValidationFailed, e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::new(Code::MalformedJson, e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                Code::MalformedJson,
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        Code::PayloadTooLarge,
                        "the request body is over the server's max_body_bytes",
                    )
                } else {
                    ApiError::new(Code::MalformedJson, e.body_text())
                }
            }
            other => ApiError::new(Code::MalformedJson, other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(Code::ValidationFailed, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(Code::ValidationFailed, r.body_text())
    }
}

/// A result whose error is an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;
