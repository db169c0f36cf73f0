//! The parameter and result structs of [`Store`](super::Store) operations, one per operation
//! that takes more than a couple of arguments (River's driver interface is the model).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::job::{DEFAULT_QUEUE, Job, JobId, JobState, Lease, validate_name};

/// The lease a claim takes unless [`Claim::lease_ttl`] says otherwise: 5 minutes.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);

/// The most groups one claim may skip.
pub const MAX_SKIP_GROUPS: usize = 10_000;

/// Which jobs to claim, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claiming worker (recorded as the lease owner).
    pub worker_id: String,
    /// Queues to take from (at least one).
    pub queues: Vec<String>,
    /// Kinds to take; empty takes every kind.
    pub kinds: Vec<String>,
    /// At most this many jobs (1..=10,000).
    pub limit: u32,
    /// How long the lease lasts before a heartbeat must extend it.
    pub lease_ttl: Duration,
    /// With exactly one kind: never let more than this many jobs of it run at once across
    /// every worker of the store (checked inside the claim, race-free).
    pub cluster_limit: Option<u32>,
    /// Leave jobs of these groups (a job's group is the string at `metadata.group`, set by
    /// [`NewJob::group`](crate::NewJob::group)) where they are: a caller whose downstream for
    /// a group is known to be down (an open breaker) claims everything else instead.
    pub skip_groups: Vec<String>,
    /// Hold the jobs instead of starting them: each is leased (and spends its attempt) as
    /// usual, but not started (`started_at` stays empty) until [`Store::start_held`] says it
    /// has. Until then it is reported as `pending`, a cancel ends it at once, and
    /// [`Store::release_held`] gives it back in its place without spending its attempt. A
    /// worker that claims ahead of its free permits holds what it claims, so that a job it
    /// merely holds is never shown running and never starts after a cancel.
    ///
    /// [`Store::start_held`]: super::Store::start_held
    /// [`Store::release_held`]: super::Store::release_held
    pub hold: bool,
}

impl Claim {
    /// Up to `limit` jobs of any kind from the `default` queue, leased for 5 minutes.
    pub fn new(worker_id: impl Into<String>, limit: u32) -> Self {
        Claim {
            worker_id: worker_id.into(),
            queues: vec![DEFAULT_QUEUE.to_owned()],
            kinds: Vec::new(),
            limit,
            lease_ttl: DEFAULT_LEASE_TTL,
            cluster_limit: None,
            skip_groups: Vec::new(),
            hold: false,
        }
    }

    /// Take from these queues.
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, queues: I) -> Self {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Take only these kinds.
    pub fn kinds<I: IntoIterator<Item = S>, S: Into<String>>(mut self, kinds: I) -> Self {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    /// Lease the jobs for `ttl`.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Leave the jobs of these groups unclaimed (see [`Claim::skip_groups`]).
    pub fn skip_groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.skip_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Claim only while fewer than `max` jobs of the (one) kind run across all workers.
    pub fn cluster_limit(mut self, max: u32) -> Self {
        self.cluster_limit = Some(max);
        self
    }

    /// Hold the jobs instead of starting them (see [`Claim::hold`](Claim#structfield.hold)).
    pub fn hold(mut self) -> Self {
        self.hold = true;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        validate_name("worker_id", &self.worker_id)?;
        if self.queues.is_empty() {
            return Err(StoreError::invalid(
                "queues",
                "name at least one queue to claim from".to_owned(),
            ));
        }
        for queue in &self.queues {
            validate_name("queues", queue)?;
        }
        for kind in &self.kinds {
            validate_name("kinds", kind)?;
        }
        if !(1..=10_000).contains(&self.limit) {
            return Err(StoreError::invalid(
                "limit",
                format!("{} is outside 1..=10000", self.limit),
            ));
        }
        if self.skip_groups.len() > MAX_SKIP_GROUPS {
            return Err(StoreError::invalid(
                "skip_groups",
                format!(
                    "{} groups; skip at most {MAX_SKIP_GROUPS} at once",
                    self.skip_groups.len()
                ),
            ));
        }
        if self.cluster_limit.is_some() && self.kinds.len() != 1 {
            return Err(StoreError::invalid(
                "cluster_limit",
                format!(
                    "applies to one kind; the claim names {} kinds",
                    self.kinds.len()
                ),
            ));
        }
        validate_ttl(self.lease_ttl)
    }
}

pub(crate) fn validate_ttl(ttl: Duration) -> Result<(), StoreError> {
    if ttl.is_zero() || ttl > Duration::from_secs(7 * 24 * 3600) {
        return Err(StoreError::invalid(
            "lease_ttl",
            format!("{ttl:?} is outside (0, 7 days]"),
        ));
    }
    Ok(())
}

/// A paused group of jobs (see [`Store::pause_group`](super::Store::pause_group)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedGroup {
    /// The group.
    pub name: String,
    /// Why it was paused.
    pub reason: String,
    /// Since when.
    pub paused_at: DateTime<Utc>,
}

/// What a heartbeat found for one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    /// Extended; carry on.
    Extended,
    /// Extended, but cancellation was asked for: stop the work and report it failed or done.
    CancelRequested,
    /// No longer held under this token (rescued, taken over or finished): stop, write nothing.
    Lost,
}

/// What became of one held job (claimed with [`Claim::hold`]) that a worker started or gave
/// back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldStatus {
    /// Done: started ([`Store::start_held`](super::Store::start_held)) or given back
    /// ([`Store::release_held`](super::Store::release_held)).
    Done,
    /// Cancelled while held: it never started, and never will.
    Cancelled,
    /// No longer held under this lease (rescued after its lease ran out, or already started
    /// or given back): leave it alone.
    Lost,
}

/// What `rescue_expired` did with one job whose lease had run out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rescued {
    /// The job.
    pub id: JobId,
    /// The worker that held the lease.
    pub previous_owner: Option<String>,
    /// Its new state: `pending` to run again, `dead` when its attempts were used up, or
    /// `cancelled` when cancellation had been asked for.
    pub state: JobState,
    /// Its queue (whose workers are woken when it is pending again).
    pub queue: String,
}

/// How long finished jobs are kept before [`delete_finished`](super::Store::delete_finished)
/// removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Succeeded jobs finished longer ago than this go.
    pub succeeded: Duration,
    /// Dead and cancelled jobs finished longer ago than this go.
    pub dead: Duration,
    /// Rows deleted per statement, so no transaction is long (1..=100,000).
    pub batch_size: u32,
}

impl Default for Retention {
    /// Succeeded jobs kept a day, dead and cancelled ones a week, 1,000 rows a statement.
    fn default() -> Self {
        Retention {
            succeeded: Duration::from_secs(24 * 3600),
            dead: Duration::from_secs(7 * 24 * 3600),
            batch_size: 1_000,
        }
    }
}

impl Retention {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(StoreError::invalid(
                "batch_size",
                format!("{} is outside 1..=100000", self.batch_size),
            ));
        }
        Ok(())
    }
}

/// Filters and a page for listing jobs, newest id first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobs {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only jobs whose last error is exactly this.
    pub error: Option<String>,
    /// Only jobs whose payload holds [`payload_value`](Self::payload_value) at this path, or
    /// without a value any value (even `null`): object keys joined by dots (`customer.id`),
    /// each of letters, digits, `_` and `-`.
    pub payload_path: Option<String>,
    /// The value at [`payload_path`](Self::payload_path) (without a path: the whole payload),
    /// compared as text: a string exactly;
    /// an integer as written (`42`); other numbers and booleans as the backend prints them
    /// (PostgreSQL keeps `1.50` and `true`, SQLite gives `1.5` and `1`).
    pub payload_value: Option<String>,
    /// Only ids below this one: the `next` of the previous page (keyset pagination).
    pub before: Option<JobId>,
    /// Page size (1..=1,000; 0 means 100).
    pub limit: u32,
}

/// The longest payload path a filter may name, in keys.
const MAX_PATH_KEYS: usize = 16;

impl ListJobs {
    /// Checks the payload filter: a path and a value together, the path well formed (`list`
    /// and `count` check it too; callers about to do more than one call check it first).
    pub fn check_filter(&self) -> Result<(), StoreError> {
        // A path alone: jobs whose payload has it; a value alone: jobs whose whole payload is
        // it (the empty path).
        let Some(path) = &self.payload_path else {
            return Ok(());
        };
        let keys: Vec<&str> = path.split('.').collect();
        let good = |k: &&str| {
            !k.is_empty()
                && k.len() <= 255
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if keys.len() > MAX_PATH_KEYS || !keys.iter().all(good) {
            return Err(StoreError::invalid(
                "payload_path",
                format!(
                    "{path:?}: use up to {MAX_PATH_KEYS} object keys joined by dots, each of \
                     letters, digits, `_` and `-` (`customer.id`)"
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn page_size(&self) -> Result<i64, StoreError> {
        match self.limit {
            0 => Ok(100),
            1..=1_000 => Ok(i64::from(self.limit)),
            n => Err(StoreError::invalid(
                "limit",
                format!("{n} is outside 1..=1000"),
            )),
        }
    }
}

/// Failed and dead jobs with one kind and one last error (see
/// [`Store::failure_groups`](super::Store::failure_groups)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
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

/// One page of [`ListJobs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs, newest id first.
    pub jobs: Vec<Job>,
    /// Pass as [`ListJobs::before`] for the next page; `None` on the last page.
    pub next: Option<JobId>,
}

impl JobPage {
    /// A page from a query that fetched one row more than `size` (to know whether there is a
    /// next page).
    pub(crate) fn from_overfetch(mut jobs: Vec<Job>, size: i64) -> Self {
        let next = if jobs.len() as i64 > size {
            jobs.truncate(size as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        JobPage { jobs, next }
    }
}

/// Assembles [`QueueStats`] from per-(queue, state) counts and the queues table.
#[derive(Debug, Default)]
pub(crate) struct QueueStatsBuilder {
    queues: std::collections::BTreeMap<String, QueueStats>,
    /// Held jobs per queue: counted `running` by state, reported `pending` (`Claim::hold`).
    held: Vec<(String, u64)>,
}

impl QueueStatsBuilder {
    fn entry(&mut self, queue: String) -> &mut QueueStats {
        self.queues
            .entry(queue.clone())
            .or_insert_with(|| QueueStats {
                queue,
                paused: false,
                counts: StateCounts::default(),
                oldest_runnable_age: None,
            })
    }

    /// A row of the queues table (queues with no jobs are listed too).
    pub(crate) fn paused(&mut self, queue: String, paused: bool) {
        self.entry(queue).paused = paused;
    }

    /// `n` jobs of `queue` in `state`, the oldest runnable of them waiting `age`.
    pub(crate) fn count(&mut self, queue: String, state: JobState, n: i64, age: Option<Duration>) {
        let s = self.entry(queue);
        s.counts.add(state, n.max(0) as u64);
        if let Some(age) = age {
            s.oldest_runnable_age = Some(s.oldest_runnable_age.map_or(age, |a| a.max(age)));
        }
    }

    /// `n` of `queue`'s running jobs are held (claimed ahead, not started): they are reported
    /// `pending`.
    pub(crate) fn held(&mut self, queue: String, n: i64) {
        self.held.push((queue, n.max(0) as u64));
    }

    /// The stats, by queue name.
    pub(crate) fn build(mut self) -> Vec<QueueStats> {
        for (queue, n) in std::mem::take(&mut self.held) {
            let counts = &mut self.entry(queue).counts;
            let n = n.min(counts.running);
            counts.running -= n;
            counts.pending += n;
        }
        self.queues.into_values().collect()
    }
}

/// What [`Store::queue_activity`](super::Store::queue_activity) found.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueActivity {
    /// Per queue: unfinished counts exact; finished counts of the jobs that finished in
    /// `[finished_since, settled_until)`, which no later call counts again.
    pub queues: Vec<QueueStats>,
    /// Per queue: finished counts of the jobs that finished at or after `settled_until` (the
    /// last `settle`): still settling, since a finishing transaction may commit a little after
    /// its `finished_at`; the next call counts them again.
    pub recent: Vec<QueueStats>,
    /// The store's clock minus `settle` (never before `finished_since`): the next call's
    /// `finished_since`.
    pub settled_until: DateTime<Utc>,
}

/// Counts for one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Whether claims skip it.
    pub paused: bool,
    /// Jobs per state (every state present, zero included).
    pub counts: StateCounts,
    /// How long the oldest runnable job (pending or failed, `run_at` passed) has waited.
    pub oldest_runnable_age: Option<Duration>,
}

impl QueueStats {
    /// A queue with no jobs, not paused.
    pub fn empty(queue: impl Into<String>) -> QueueStats {
        QueueStats {
            queue: queue.into(),
            paused: false,
            counts: StateCounts::default(),
            oldest_runnable_age: None,
        }
    }
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    /// `pending`.
    pub pending: u64,
    /// `running`.
    pub running: u64,
    /// `succeeded`.
    pub succeeded: u64,
    /// `failed` (waiting for a retry).
    pub failed: u64,
    /// `dead`.
    pub dead: u64,
    /// `cancelled`.
    pub cancelled: u64,
}

impl StateCounts {
    /// The count for one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Pending => self.pending,
            JobState::Running => self.running,
            JobState::Succeeded => self.succeeded,
            JobState::Failed => self.failed,
            JobState::Dead => self.dead,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// Sets the count for one state.
    pub fn set(&mut self, state: JobState, n: u64) {
        *self.slot(state) = n;
    }

    pub(crate) fn add(&mut self, state: JobState, n: u64) {
        *self.slot(state) += n;
    }

    fn slot(&mut self, state: JobState) -> &mut u64 {
        match state {
            JobState::Pending => &mut self.pending,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Dead => &mut self.dead,
            JobState::Cancelled => &mut self.cancelled,
        }
    }
}

/// One job's completion in a batch: its lease and what the handler returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The lease of the claim.
    pub lease: Lease,
    /// The handler's result, kept on the job.
    pub result: Option<Value>,
}

impl Completion {
    /// Checks a result as `complete` would (depth, NUL characters), without writing: a caller
    /// that groups completions refuses a bad one alone instead of failing the group.
    pub fn check_result(result: &Value) -> Result<(), StoreError> {
        crate::json::validate("result", result)
    }
}

/// The time a failed job should run again.
pub type RetryAt = DateTime<Utc>;
