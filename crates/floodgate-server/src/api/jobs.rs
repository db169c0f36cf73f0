//! Producers' routes: enqueue (one job or a batch; 202 with a status monitor), status, list,
//! cancel and retry. Handlers only translate HTTP to store calls; no SQL here.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use floodgate_queue::{JobId, JobState, ListJobs, NewJob, Store};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::ApiJson;
use super::model::{
    Accepted, ApiState, BatchAccepted, BatchRequest, JobList, JobRequest, JobView, ListQuery,
    Reported,
};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// Enqueue one job, or a batch (`{"jobs": [...]}`) in one transaction.
///
/// One job answers `202 Accepted` with a `Location` to poll; a repeated `Idempotency-Key`
/// (header, or `idempotency_key` per job in a batch) answers `200` with the original job,
/// and `422 IDEMPOTENCY_KEY_REUSED` when the request differs from the original. Keys are
/// kept as long as the job row (until retention deletes the finished job).
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body(content = JobRequest, description = "One job, or `{\"jobs\": [JobRequest, ...]}`"),
    params((
        "Idempotency-Key" = Option<String>, Header,
        pattern = r#"^("[\x20\x21\x23-\x5b\x5d-\x7e]{1,248}"|[\x21\x23-\x7e]{1,248})$"#,
        description = "Makes a repeat of this request return the first job (for a batch, keys \
                       each job without a key of its own `{key}:{index}`): a bare token or a \
                       quoted string (`\"k-1\"`), 1 to 248 visible ASCII characters; a key \
                       reused with another request is refused, 422 `IDEMPOTENCY_KEY_REUSED`"
    )),
    responses(
        crate::error::Problems,
        (status = 202, description = "Stored; poll the Location", body = Accepted),
        (status = 200, description = "A repeat of an earlier request: the original job", body = Accepted),
    )
)]
pub async fn enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let is_batch = body.as_object().is_some_and(|o| o.contains_key("jobs"));
    if is_batch {
        let key = idempotency_header(&headers)?;
        let batch: BatchRequest = super::json::from_value(body)?;
        return enqueue_batch(&state, batch, key).await;
    }
    let request: JobRequest = super::json::from_value(body)?;
    if request.idempotency_key.is_some() {
        return Err(ApiError::invalid(
            "idempotency_key",
            "for one job, send the key in the Idempotency-Key header (the field is for the \
             jobs of a batch)",
        ));
    }
    let key = idempotency_header(&headers)?;
    let mut job = new_job(&request, "", &state)?;
    if let Some(key) = key {
        job = job.idempotency_key(key);
    }
    let enqueued = state.enqueuer().enqueue(job).await?;
    if enqueued.inserted {
        let accepted = accepted(enqueued.id, request.run_at, false);
        return Ok(with_location(StatusCode::ACCEPTED, accepted));
    }
    // A repeat: the same request must find the same job.
    let original = state
        .store()
        .job(enqueued.id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the original job vanished"))?;
    if !same_request(&request, &original, state.deliveries()) {
        return Err(ApiError::new(
            Code::IdempotencyKeyReused,
            format!(
                "the idempotency key was first used for job {} with a different request; use a \
                 new key for a new request",
                original.id
            ),
        ));
    }
    let mut accepted = accepted(original.id, None, true);
    accepted.state = ApiState::of(&original);
    Ok(with_location(StatusCode::OK, accepted))
}

/// A batch; with an `Idempotency-Key` header, each job without a key of its own is keyed
/// `{header}:{index}`, so a retry of the whole batch makes no job twice.
async fn enqueue_batch(
    state: &AppState,
    batch: BatchRequest,
    key: Option<String>,
) -> ApiResult<Response> {
    let max = state.config().max_batch;
    if batch.jobs.is_empty() || batch.jobs.len() > max {
        return Err(ApiError::invalid(
            "jobs",
            format!("{} jobs; send 1 to {max} in one batch", batch.jobs.len()),
        ));
    }
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, request) in batch.jobs.iter().enumerate() {
        let mut job = new_job(request, &format!("jobs[{i}]."), state)?;
        if let (Some(key), None) = (&key, &request.idempotency_key) {
            job = job.idempotency_key(format!("{key}:{i}"));
        }
        jobs.push(job);
    }
    let out = state.store().enqueue_many(jobs).await?;
    let accepted = out
        .iter()
        .zip(&batch.jobs)
        .map(|(e, r)| accepted(e.id, r.run_at, !e.inserted))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchAccepted { jobs: accepted })).into_response())
}

fn accepted(id: JobId, run_at: Option<chrono::DateTime<Utc>>, duplicate: bool) -> Accepted {
    let state = match run_at {
        Some(at) if at > Utc::now() => ApiState::Scheduled,
        _ => ApiState::Pending,
    };
    Accepted {
        id: id.0,
        state,
        duplicate,
        location: format!("/v1/jobs/{}", id.0),
    }
}

fn with_location(status: StatusCode, accepted: Accepted) -> Response {
    let location = HeaderValue::from_str(&accepted.location).expect("an ASCII path");
    let mut response = (status, Json(accepted)).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The longest `Idempotency-Key`: a batch's jobs are keyed `{key}:{index}` within the
/// store's 255 characters (indexes below 1,000,000).
const MAX_HEADER_KEY: usize = floodgate_queue::MAX_NAME_LEN - 7;

/// The `Idempotency-Key` header, checked: a quoted string (RFC 8941, as the IETF draft
/// writes it: `"k-1"`) or a bare token, 1 to 248 visible ASCII characters, no `"`.
fn idempotency_header(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let refuse = || {
        ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 248 visible ASCII characters without `\"`, bare or in quotes",
        )
    };
    let raw = value.to_str().map_err(|_| refuse())?;
    let (key, allowed): (&str, fn(u8) -> bool) =
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => (inner, |b| {
                (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'
            }),
            None => (raw, |b| (0x21..=0x7e).contains(&b) && b != b'"'),
        };
    if key.is_empty() || key.len() > MAX_HEADER_KEY || !key.bytes().all(allowed) {
        return Err(refuse());
    }
    Ok(Some(key.to_owned()))
}

/// A store job from a request, checked as the store would (payload at most
/// `max_payload_bytes`); `at` prefixes field names in errors (`jobs[3].`). A built-in kind
/// (a delivery target, like `webhook`) checks its payload now, so one it could not deliver is
/// refused, and puts the job in its queue (unless the request names one) and its
/// destination's group (whatever the request's metadata says).
fn new_job(r: &JobRequest, at: &str, state: &AppState) -> ApiResult<NewJob> {
    let delivery = state.deliveries().get(&r.kind);
    let group = match delivery {
        Some(d) => Some(
            d.group(&r.payload)
                .map_err(|e| ApiError::invalid(&format!("{at}payload"), e))?,
        ),
        None => None,
    };
    let mut job = NewJob::new(r.kind.clone(), r.payload.clone());
    if let Some(d) = delivery {
        job = job.queue(d.queue());
    }
    if let Some(q) = &r.queue {
        job = job.queue(q.clone());
    }
    if let Some(p) = r.priority {
        if !(1..=10).contains(&p) {
            return Err(ApiError::invalid(
                &format!("{at}priority"),
                format!("{p} is outside 1..=10"),
            ));
        }
        job = job.priority(p);
    }
    if let Some(t) = r.run_at {
        job = job.run_at(t);
    }
    if let Some(n) = r.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(k) = &r.idempotency_key {
        job = job.idempotency_key(k.clone());
    }
    if let Some(k) = &r.ordering_key {
        job = job.ordering_key(k.clone());
    }
    if let Some(m) = &r.metadata {
        if !m.is_object() {
            return Err(ApiError::invalid(
                &format!("{at}metadata"),
                "must be a JSON object",
            ));
        }
        job = job.metadata(m.clone());
    }
    if let Some(group) = group {
        // After the metadata: its destination's group, which claims skip while it waits.
        job = job.group(group);
    }
    // The store's own checks, reported with the field's path.
    job.check(state.config().max_payload_bytes)
        .map_err(|e| match e {
            floodgate_queue::StoreError::Invalid { field, reason } => {
                ApiError::invalid(&format!("{at}{field}"), reason)
            }
            other => {
                let e = ApiError::from(other);
                ApiError::new(e.code(), format!("{at}payload: {}", e.detail()))
            }
        })?;
    Ok(job)
}

/// Whether `r` asks for what `job` was enqueued with.
fn same_request(
    r: &JobRequest,
    job: &floodgate_queue::Job,
    deliveries: &crate::delivery::Deliveries,
) -> bool {
    r.kind == job.kind
        && r.payload == job.payload
        && r.queue.as_deref().unwrap_or_else(|| {
            deliveries
                .get(&r.kind)
                .map_or(floodgate_queue::DEFAULT_QUEUE, |d| d.queue())
        }) == job.queue
        && r.priority.unwrap_or(floodgate_queue::DEFAULT_PRIORITY) == job.priority
        && r.max_attempts
            .unwrap_or(floodgate_queue::DEFAULT_MAX_ATTEMPTS)
            == job.max_attempts
        && r.ordering_key == job.ordering_key
}

/// A job's status; `Retry-After` says when to poll again while it is not finished.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        crate::error::Problems,
        (status = 200, description = "The job", body = JobView),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = id?;
    let job = state
        .store()
        .job(JobId(id))
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("job {id} does not exist")))?;
    let view = JobView::from(job);
    let retry_after = (!view.state.is_finished()).then(|| {
        let until = (view.run_at - Utc::now()).num_seconds();
        until.clamp(1, 3600) as u64
    });
    let mut response = Json(view).into_response();
    if let Some(s) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    Ok(response)
}

/// Jobs, newest first, a page at a time (keyset: pass `next` as `cursor`).
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(super::model::JobFilter, super::model::Page),
    responses(
        crate::error::Problems,
        (status = 200, description = "A page", body = JobList),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<JobList>> {
    let Query(q) = query?;
    if let Some(name) = q.unknown.keys().next() {
        return Err(ApiError::invalid(
            name,
            "is not a filter; the filters are state, queue, kind, error, path, value, cursor, limit",
        ));
    }
    let cursor = q
        .page
        .cursor
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| {
            ApiError::invalid("cursor", "is not a job id; pass the previous page's next")
        })?;
    let limit = match q.page.limit.as_deref().map(str::parse::<u32>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                format!("{} is outside 1..=1000", q.page.limit.unwrap_or_default()),
            ));
        }
    };
    let list = ListJobs {
        before: cursor.map(JobId),
        limit,
        ..q.filter.to_list()?
    };
    let page = state.store().list(&list).await?;
    Ok(Json(JobList {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next: page.next.map(|id| id.0),
    }))
}

/// A state filter: stored states, and the client-facing names that map onto them.
pub(crate) fn parse_state(s: &str) -> ApiResult<JobState> {
    Ok(match s {
        "pending" | "scheduled" => JobState::Pending,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" | "failed_will_retry" => JobState::Failed,
        "dead" => JobState::Dead,
        "cancelled" => JobState::Cancelled,
        other => {
            return Err(ApiError::invalid(
                "state",
                format!(
                    "{other:?} is not a state; use pending, running, succeeded, failed, dead or \
                     cancelled"
                ),
            ));
        }
    })
}

/// Cancels a waiting job at once; a running one is asked to stop (its worker sees
/// `cancel_requested` at its next heartbeat).
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        crate::error::Problems,
        (status = 200, description = "Cancelled (or cancellation requested)", body = Reported),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Reported>> {
    let Path(id) = id?;
    let now = state.store().cancel(JobId(id)).await?;
    let state = match now {
        JobState::Running => ApiState::Running,
        _ => ApiState::Cancelled,
    };
    Ok(Json(Reported { id, state }))
}

/// Runs a dead or cancelled job again, with a fresh set of attempts.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        crate::error::Problems,
        (status = 200, description = "Pending again", body = Reported),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Reported>> {
    let Path(id) = id?;
    state.store().retry_dead(JobId(id)).await?;
    // A finished job left its state: the next count starts over.
    state.sampler().invalidate();
    Ok(Json(Reported {
        id,
        state: ApiState::Pending,
    }))
}

/// This module's routes, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enqueue, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel))
        .routes(routes!(retry))
}
