//! The job model: what is stored, what a producer hands in, and what a worker holds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// A job's id: a bigint assigned in insertion order, so ids sort by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A random token set by every claim. Completion must present it, so a worker whose lease
/// was taken over (or a restarted worker with the same id) cannot finish the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseToken(pub i64);

/// What a worker holds for a claimed job: the job's id and the token of its claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The claimed job.
    pub id: JobId,
    /// The token the claim set.
    pub token: LeaseToken,
}

/// Where a job is in its life.
///
/// `pending` and `failed` (waiting for a retry) are runnable once `run_at` has passed;
/// `running` is leased to a worker; `succeeded`, `dead` and `cancelled` are finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (at or after `run_at`).
    Pending,
    /// Claimed by a worker and leased until `lease_expires_at`.
    Running,
    /// Finished successfully.
    Succeeded,
    /// An attempt failed; waiting for its retry at `run_at`.
    Failed,
    /// Attempts exhausted, or failed permanently: a dead letter, kept with its last error.
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The name stored in the database and shown in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will never run again on its own (`succeeded`, `dead`, `cancelled`).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown job state {s:?}")))
    }
}

/// A stored job, as read back from the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The queue it is in.
    pub queue: String,
    /// The handler name that runs it.
    pub kind: String,
    /// The handler's input.
    pub payload: Value,
    /// 1 (lowest) to 10 (highest); higher runs first.
    pub priority: u8,
    /// When it may run (next).
    pub run_at: DateTime<Utc>,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts started so far (a claim starts one; a snooze gives it back).
    pub attempt: u32,
    /// Attempts allowed before it goes dead.
    pub max_attempts: u32,
    /// The worker holding (or that last held) its lease.
    pub lease_owner: Option<String>,
    /// The token of the current lease, while `running`.
    pub lease_token: Option<LeaseToken>,
    /// When the current lease runs out, while `running`.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Cancellation was asked for while it was running; its worker learns at the next heartbeat.
    pub cancel_requested: bool,
    /// The producer's idempotency key, unique per queue.
    pub idempotency_key: Option<String>,
    /// Jobs sharing an ordering key (per queue) run one at a time, oldest first.
    pub ordering_key: Option<String>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// What the handler returned on success.
    pub result: Option<Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it finished (`succeeded`, `dead` or `cancelled`).
    pub finished_at: Option<DateTime<Utc>>,
    /// When its current (or last) attempt started; `None` before the first claim.
    pub started_at: Option<DateTime<Utc>>,
    /// Free-form data; the store records rescues here (`rescues`, `last_rescue`).
    pub metadata: Value,
}

impl Job {
    /// Its group (`metadata.group`, see [`NewJob::group`]), if it has one.
    pub fn group(&self) -> Option<&str> {
        self.metadata.get("group").and_then(Value::as_str)
    }

    /// The payload decoded into the handler's type.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }

    /// The lease to complete it with, while it is `running`.
    pub fn lease(&self) -> Option<Lease> {
        match (self.state, self.lease_token) {
            (JobState::Running, Some(token)) => Some(Lease { id: self.id, token }),
            _ => None,
        }
    }
}

/// A job to enqueue: kind and payload, with defaults for the rest (queue `default`,
/// priority 5, run now, 25 attempts).
///
/// ```
/// use floodgate_queue::NewJob;
/// use serde_json::json;
///
/// let job = NewJob::new("send_email", json!({"to": "ada@example.com"}))
///     .queue("mail")
///     .priority(8)
///     .idempotency_key("welcome:ada")
///     .max_attempts(5);
/// assert_eq!(job.queue_name(), "mail");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) payload: Value,
    pub(crate) priority: u8,
    pub(crate) run_at: Option<DateTime<Utc>>,
    pub(crate) max_attempts: u32,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) ordering_key: Option<String>,
    pub(crate) metadata: Value,
}

/// The queue a job goes to unless [`NewJob::queue`] says otherwise.
pub const DEFAULT_QUEUE: &str = "default";
/// The priority of a job unless [`NewJob::priority`] says otherwise (the middle of 1..=10).
pub const DEFAULT_PRIORITY: u8 = 5;
/// Attempts allowed unless [`NewJob::max_attempts`] says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;
/// The longest queue, kind, idempotency key or ordering key accepted, in characters (as JSON
/// Schema's `maxLength` counts them; at most 1,020 bytes of UTF-8).
pub const MAX_NAME_LEN: usize = 255;

impl NewJob {
    /// A job of `kind` with a JSON payload.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        NewJob {
            queue: DEFAULT_QUEUE.to_owned(),
            kind: kind.into(),
            payload,
            priority: DEFAULT_PRIORITY,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            idempotency_key: None,
            ordering_key: None,
            metadata: Value::Object(Default::default()),
        }
    }

    /// A job of `kind` whose payload is `payload` serialised to JSON.
    pub fn with_payload<T: Serialize + ?Sized>(
        kind: impl Into<String>,
        payload: &T,
    ) -> Result<Self, StoreError> {
        Ok(NewJob::new(kind, serde_json::to_value(payload)?))
    }

    /// The queue (default `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Priority 1 (lowest) to 10 (highest), default 5; others are rejected at enqueue.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Run no earlier than `at` (default: now).
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Attempts allowed before the job goes dead (at least 1; default 25).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// A key unique per queue: enqueueing it again returns the existing job instead of a
    /// second one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Of the unfinished jobs with this key in this queue, only the oldest can be claimed:
    /// FIFO per aggregate (an order id, an account).
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Free-form JSON kept with the job (an object). Replaces what [`group`](Self::group) set:
    /// call `group` after it.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Puts the job in `group` (the string `metadata.group`): a claim can leave a group's jobs
    /// where they are ([`Claim::skip_groups`](crate::store::Claim::skip_groups)), as the
    /// server's webhook worker does for a destination whose breaker is open.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        if !self.metadata.is_object() {
            self.metadata = Value::Object(Default::default());
        }
        if let Value::Object(map) = &mut self.metadata {
            map.insert("group".to_owned(), Value::String(group.into()));
        }
        self
    }

    /// The queue it will go to.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Its kind.
    pub fn kind_name(&self) -> &str {
        &self.kind
    }

    /// Checks the job as a store's `enqueue` would, with a payload limit of
    /// `max_payload_bytes`, without writing anything: a caller that batches jobs from several
    /// sources (the server's group commit) refuses a bad one alone instead of failing the
    /// whole batch.
    pub fn check(&self, max_payload_bytes: usize) -> Result<(), StoreError> {
        self.validate()?;
        crate::json::check_size(&self.payload, max_payload_bytes)
    }

    /// Checks what the database would otherwise reject less clearly.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        validate_name("queue", &self.queue)?;
        validate_name("kind", &self.kind)?;
        if !(1..=10).contains(&self.priority) {
            return Err(StoreError::invalid(
                "priority",
                format!("{} is outside 1..=10", self.priority),
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > i32::MAX as u32 {
            return Err(StoreError::invalid(
                "max_attempts",
                format!("{} is outside 1..=2^31-1", self.max_attempts),
            ));
        }
        if let Some(key) = &self.idempotency_key {
            validate_name("idempotency_key", key)?;
        }
        if let Some(key) = &self.ordering_key {
            validate_name("ordering_key", key)?;
        }
        if !self.metadata.is_object() {
            return Err(StoreError::invalid(
                "metadata",
                "must be a JSON object".to_owned(),
            ));
        }
        crate::json::validate("payload", &self.payload)?;
        crate::json::validate("metadata", &self.metadata)
    }
}

pub(crate) fn validate_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty".to_owned()));
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(StoreError::invalid(
            field,
            format!("is {chars} characters long; at most {MAX_NAME_LEN}"),
        ));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(
            field,
            "must not contain a NUL character".to_owned(),
        ));
    }
    Ok(())
}

/// What enqueueing one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job's id: the new one, or the existing job's for a duplicate idempotency key.
    pub id: JobId,
    /// `false` when the idempotency key was already taken and no row was written.
    pub inserted: bool,
}
