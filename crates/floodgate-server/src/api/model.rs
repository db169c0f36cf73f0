//! The JSON shapes of the API: requests as clients send them, responses as the server
//! answers. Unknown fields are refused (a typo is an error, not a silently ignored setting).

use chrono::{DateTime, Utc};
use floodgate_queue::{Job, JobState, QueueStats};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// One job to enqueue.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// What the job does; workers claim by kind (at most 255 characters).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub kind: String,
    /// Any JSON (default `null`; at most `max_payload_bytes`, nested at most 127 deep).
    #[serde(default)]
    pub payload: Value,
    /// The queue (default `default`).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub queue: Option<String>,
    /// 1..=10, higher first (default 5).
    #[schema(minimum = 1, maximum = 10)]
    pub priority: Option<u8>,
    /// Not before this time (RFC 3339; default now).
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before the job goes dead (default 25).
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    /// A repeat with this key returns the first job (in a batch; for one job, the
    /// `Idempotency-Key` header does the same).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub idempotency_key: Option<String>,
    /// Jobs with one ordering key run one at a time, in order.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub ordering_key: Option<String>,
    /// A JSON object kept with the job.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// A kind, queue, worker or key: 1 to 255 characters, no NUL (in the document only; the fields
/// are plain strings).
#[derive(ToSchema)]
#[schema(pattern = "^[^\\u0000]{1,255}$")]
pub struct Name(pub String);

/// Many jobs in one transaction.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs (at most `max_batch`, 1,000 by default: this server's is in its document).
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<JobRequest>,
}

/// A job's state as clients see it: `pending` is split into runnable and `scheduled`, and a
/// failed attempt waiting for its retry is `failed_will_retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiState {
    /// Waiting to run now.
    Pending,
    /// Waiting for its `run_at`.
    Scheduled,
    /// Leased to a worker.
    Running,
    /// Done.
    Succeeded,
    /// An attempt failed; it runs again at `run_at`.
    FailedWillRetry,
    /// Out of attempts, or failed permanently.
    Dead,
    /// Cancelled.
    Cancelled,
}

impl ApiState {
    /// The client-facing state of `job`.
    pub fn of(job: &Job) -> ApiState {
        match job.state {
            JobState::Pending if job.run_at > Utc::now() => ApiState::Scheduled,
            JobState::Pending => ApiState::Pending,
            JobState::Running => ApiState::Running,
            JobState::Succeeded => ApiState::Succeeded,
            JobState::Failed => ApiState::FailedWillRetry,
            JobState::Dead => ApiState::Dead,
            JobState::Cancelled => ApiState::Cancelled,
        }
    }

    /// Whether the job has finished (no `Retry-After` for a finished job).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ApiState::Succeeded | ApiState::Dead | ApiState::Cancelled
        )
    }
}

/// A job, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Where it is.
    pub state: ApiState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// 1..=10.
    pub priority: u8,
    /// When it runs (next).
    pub run_at: DateTime<Utc>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// What the handler returned.
    pub result: Option<Value>,
    /// Its payload.
    pub payload: Value,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Its ordering key.
    pub ordering_key: Option<String>,
    /// While running: when the lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Whether cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// Its metadata.
    pub metadata: Value,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        JobView {
            id: job.id.0,
            state: ApiState::of(&job),
            queue: job.queue,
            kind: job.kind,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            priority: job.priority,
            run_at: job.run_at,
            last_error: job.last_error,
            result: job.result,
            payload: job.payload,
            idempotency_key: job.idempotency_key,
            ordering_key: job.ordering_key,
            lease_expires_at: job.lease_expires_at,
            cancel_requested: job.cancel_requested,
            metadata: job.metadata,
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
        }
    }
}

/// What an enqueue did with one job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The job's id (the existing job's, for a repeated idempotency key).
    pub id: i64,
    /// Its state now.
    pub state: ApiState,
    /// `true` when an idempotency key matched an existing job and nothing was written.
    pub duplicate: bool,
    /// Where to poll it.
    pub location: String,
}

/// What a batch enqueue did, one entry per job in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    /// One per job, in request order.
    pub jobs: Vec<Accepted>,
}

/// The query of `GET /v1/jobs`: the [`JobFilter`]s, a [`Page`], and nothing else.
/// Documented as `params(JobFilter, Page)` (the OpenAPI derive cannot flatten).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// The filters.
    #[serde(flatten)]
    pub filter: JobFilter,
    /// The page.
    #[serde(flatten)]
    pub page: Page,
    /// Parameters that are none of the above (refused, naming them).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, String>,
}

/// A page of a listing. (Read as text and parsed by the handler: beside a flattened struct,
/// the query-string reader hands every value over as text.)
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>)]
    pub cursor: Option<String>,
    /// Page size, 1..=1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// The filters of a count or of an action on many jobs: those of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// One of pending, running, succeeded, failed, dead, cancelled.
    #[param(
        pattern = "^(pending|scheduled|running|succeeded|failed|failed_will_retry|dead|cancelled)$"
    )]
    #[schema(
        pattern = "^(pending|scheduled|running|succeeded|failed|failed_will_retry|dead|cancelled)$"
    )]
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs whose last error is exactly this.
    pub error: Option<String>,
    /// A payload path (object keys joined by dots); without `value`, jobs that have it.
    #[param(pattern = "^[A-Za-z0-9_-]{1,255}([.][A-Za-z0-9_-]{1,255}){0,15}$")]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,255}([.][A-Za-z0-9_-]{1,255}){0,15}$")]
    pub path: Option<String>,
    /// The value at `path`, as text; without `path`, the whole payload's.
    pub value: Option<String>,
}

impl JobFilter {
    /// The store's listing with these filters (first page).
    pub fn to_list(self) -> Result<floodgate_queue::ListJobs, crate::error::ApiError> {
        Ok(floodgate_queue::ListJobs {
            state: self
                .state
                .as_deref()
                .map(super::jobs::parse_state)
                .transpose()?,
            queue: self.queue,
            kind: self.kind,
            error: self.error,
            payload_path: self.path,
            payload_value: self.value,
            ..floodgate_queue::ListJobs::default()
        })
    }
}

/// How many jobs match a filter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobCount {
    /// The number of jobs.
    pub count: u64,
}

/// What an action on every job matching a filter did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Affected {
    /// How many jobs it changed.
    pub affected: u64,
}

/// Failed and dead jobs grouped by queue, kind and last error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailureGroups {
    /// Biggest group first.
    pub groups: Vec<FailureGroupView>,
}

/// One group of failures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailureGroupView {
    /// The jobs' queue.
    pub queue: String,
    /// Their kind.
    pub kind: String,
    /// Their last error.
    pub error: String,
    /// How many jobs.
    pub count: u64,
    /// The oldest of them last changed then.
    pub first_seen: DateTime<Utc>,
    /// The newest of them last changed then.
    pub last_seen: DateTime<Utc>,
}

/// Filters of `GET /v1/failures`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FailureQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// A queue's counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// The queue.
    pub queue: String,
    /// Whether claims skip it.
    pub paused: bool,
    /// Jobs per stored state.
    pub counts: Counts,
    /// How long the oldest runnable job has waited, in seconds.
    pub oldest_pending_age_seconds: Option<f64>,
}

/// Jobs per stored state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Pending (runnable or scheduled).
    pub pending: u64,
    /// Running.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed, waiting for a retry.
    pub failed: u64,
    /// Dead.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl From<QueueStats> for QueueView {
    fn from(q: QueueStats) -> Self {
        let c = q.counts;
        QueueView {
            queue: q.queue,
            paused: q.paused,
            counts: Counts {
                pending: c.pending,
                running: c.running,
                succeeded: c.succeeded,
                failed: c.failed,
                dead: c.dead,
                cancelled: c.cancelled,
            },
            oldest_pending_age_seconds: q.oldest_runnable_age.map(|d| d.as_secs_f64()),
        }
    }
}

/// Every queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    /// The queues, by name.
    pub queues: Vec<QueueView>,
    /// When the counts were taken (at most `queue_stats_max_age` ago).
    pub sampled_at: DateTime<Utc>,
}

/// A claim by an HTTP worker.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The worker's name (recorded as the lease owner).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub worker: String,
    /// Only these kinds (default: any).
    #[serde(default)]
    #[schema(value_type = Vec<Name>)]
    pub kinds: Vec<String>,
    /// At most this many jobs, 1..=1000 (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: u32,
    /// Lease length in seconds, 1..=3600 (default 300); extend it with heartbeats.
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_ttl: Option<u64>,
    /// Long poll: wait up to this many seconds (at most 30) for a job when none is ready.
    #[schema(minimum = 0, maximum = 30)]
    pub wait: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A claimed job: the job and the lease token every report on it must carry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimedJob {
    /// The job.
    #[serde(flatten)]
    pub job: JobView,
    /// The lease token (a string: it does not fit a JavaScript number).
    pub lease_token: String,
}

/// What a claim returned (possibly nothing).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Claimed {
    /// The jobs, highest priority first.
    pub jobs: Vec<ClaimedJob>,
}

/// A heartbeat.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
    /// The worker's name, as given to the claim (default: the job's lease owner).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]+$")]
    pub worker: Option<String>,
    /// New lease length in seconds from now, 1..=3600 (default 300).
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_ttl: Option<u64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// `true` when cancellation was asked for: stop and report the job failed or done.
    pub cancel_requested: bool,
    /// When the lease now runs out.
    pub lease_expires_at: DateTime<Utc>,
}

/// A success report.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
    /// Kept on the job and shown by status polling.
    pub result: Option<Value>,
}

/// A failure report.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
    /// What went wrong (kept as the job's last error).
    pub error: String,
    /// `true`: do not retry, the job goes dead now.
    #[serde(default)]
    pub permanent: bool,
    /// Retry after this many seconds (default: exponential backoff by attempt).
    pub retry_in: Option<u64>,
}

/// A snooze: put the job back without spending the attempt.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeRequest {
    /// The lease token from the claim.
    #[schema(pattern = "^-?[0-9]{1,19}$")]
    pub lease_token: String,
    /// Run again after this many seconds (default 0).
    #[serde(default)]
    pub delay: u64,
}

/// The job's state after a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reported {
    /// The job.
    pub id: i64,
    /// Its state now.
    pub state: ApiState,
}

/// Liveness and readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Why not ready, when not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// What works less well than it should without making the server unready: a relay whose
    /// broker cannot be reached (its jobs are accepted and wait).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
}
