//! Named rate limits over HTTP: list them, and check a key (see [`crate::limits::rates`]).
//!
//! Every check's answer, allowed or not, carries the IETF `RateLimit-Policy` and `RateLimit`
//! header fields (draft-ietf-httpapi-ratelimit-headers), so generic clients understand it:
//!
//! ```text
//! RateLimit-Policy: "per_customer";q=100;w=60
//! RateLimit: "per_customer";r=42;t=35
//! ```
//!
//! `q` is the burst, `w` the seconds a full bucket takes to refill, `r` what the key has left
//! and `t` the seconds until its bucket is full again.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use crate::error::{ApiError, ApiResult, Code};
use crate::limits::Scope;
use crate::limits::config::Policy;
use crate::limits::rates::Verdict;
use crate::state::AppState;

/// A rate limit with its counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamedRateLimit {
    /// Its name (`[rate_limits.NAME]`).
    pub name: String,
    /// `local` (this server) or `fleet` (every server sharing `redis_url`).
    pub scope: Scope,
    /// Calls per period, per key.
    pub rate: u32,
    /// The period, in seconds.
    pub per: f64,
    /// Calls a key may make at once after a quiet spell.
    pub burst: u32,
    /// Keys remembered on this server (local scope).
    pub keys: Option<usize>,
    /// Checks allowed on this server since start.
    pub allowed: u64,
    /// Checks over the limit.
    pub limited: u64,
    /// Checks refused because Redis could not answer (closed policy).
    pub unavailable: u64,
    /// Fleet scope: what happens when Redis cannot answer.
    pub failure_policy: Option<Policy>,
}

/// The configured rate limits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RateLimitList {
    /// Every `[rate_limits.NAME]`, by name.
    pub rate_limits: Vec<NamedRateLimit>,
}

/// Every configured rate limit with its counts.
#[utoipa::path(
    get, path = "/v1/rate-limits", tag = "limits", operation_id = "list_rate_limits",
    responses(crate::error::Problems, (status = 200, description = "The rate limits", body = RateLimitList))
)]
pub async fn list_rate_limits(State(state): State<AppState>) -> Json<RateLimitList> {
    let rate_limits = state
        .limits()
        .rates()
        .snapshot()
        .into_iter()
        .map(|s| NamedRateLimit {
            scope: s.scope,
            rate: s.spec.rate,
            per: s.spec.per,
            burst: s.burst,
            keys: s.keys,
            allowed: s.allowed,
            limited: s.limited,
            unavailable: s.unavailable,
            failure_policy: (s.scope == Scope::Fleet).then_some(s.spec.failure_policy),
            name: s.name,
        })
        .collect();
    Json(RateLimitList { rate_limits })
}

/// A check of one key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateCheck {
    /// What is limited: a customer, an API key, an IP (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256)]
    pub key: String,
    /// Cells this call takes (default 1), at most the rate limit's burst (`GET
    /// /v1/rate-limits`); more could never be allowed and is refused 422.
    #[schema(minimum = 1)]
    pub cost: Option<u32>,
}

/// An allowed check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RateAllowed {
    /// Always true (a refusal is a `429` problem).
    pub allowed: bool,
    /// Calls the key may still make at once.
    pub remaining: u32,
    /// Seconds until the key's bucket is full again.
    pub reset_after: f64,
    /// `false` when Redis could not be reached and the open policy let the call through.
    pub enforced: bool,
    /// `local` (this server's count) or `fleet` (every server's, in Redis).
    pub scope: Scope,
}

/// Takes `cost` from the key's allowance: `200` with what is left, or `429 RATE_LIMITED` with
/// `Retry-After`. Both carry `RateLimit-Policy` and `RateLimit` (see the module docs).
#[utoipa::path(
    post, path = "/v1/rate-limits/{name}/check", tag = "limits", operation_id = "check_rate_limit",
    params(("name" = String, Path, description = "The rate limit", example = "per_customer")),
    request_body = RateCheck,
    responses(crate::error::Problems, (status = 200, description = "Allowed", body = RateAllowed))
)]
pub async fn check(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<RateCheck>,
) -> ApiResult<Response> {
    let Path(name) = name?;
    let rates = state.limits().rates();
    let verdict = rates
        .check(&name, &body.key, body.cost.unwrap_or(1))
        .await?;
    let (burst, window) = rates.policy(&name).unwrap_or((0, Duration::ZERO));
    let policy = field(&format!("\"{name}\";q={burst};w={}", whole_secs(window)));
    match verdict {
        Verdict::Allowed(left) => {
            let current = field(&format!(
                "\"{name}\";r={};t={}",
                left.remaining,
                whole_secs(left.reset_after)
            ));
            let body = RateAllowed {
                allowed: true,
                remaining: left.remaining,
                reset_after: left.reset_after.as_secs_f64(),
                enforced: left.enforced,
                scope: rates.scope(&name).unwrap_or(Scope::Local),
            };
            Ok((
                [
                    (HeaderName::from_static("ratelimit-policy"), policy),
                    (HeaderName::from_static("ratelimit"), current),
                ],
                Json(body),
            )
                .into_response())
        }
        Verdict::Limited {
            retry_after,
            reset_after,
        } => Err(ApiError::new(
            Code::RateLimited,
            format!(
                "{:?} is over the rate limit {name:?}; retry in {:.3} s",
                body.key,
                retry_after.as_secs_f64()
            ),
        )
        .retry_after(whole_secs(retry_after).max(1))
        .header(HeaderName::from_static("ratelimit-policy"), policy)
        .header(
            HeaderName::from_static("ratelimit"),
            field(&format!("\"{name}\";r=0;t={}", whole_secs(reset_after))),
        )),
    }
}

/// Seconds rounded up: a client waiting that long is never early.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A header value from text built of a checked name and numbers (always visible ASCII).
fn field(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rate_limits))
        .routes(routes!(check))
}
