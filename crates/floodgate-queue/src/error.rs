//! The store's one error type.

use crate::job::{JobId, JobState};

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The job is no longer `running` under that lease token: the lease expired and the job
    /// was rescued or claimed again, or it was cancelled or finished. Nothing was changed;
    /// the caller must not treat its work as recorded.
    #[error(
        "lease lost for job {id}: it is no longer running under this lease token (rescued after \
         the lease expired, taken over, or finished); nothing was written"
    )]
    LeaseLost {
        /// The job.
        id: JobId,
    },
    /// No job has that id (never existed, or removed by retention).
    #[error("job {id} not found")]
    NotFound {
        /// The id asked for.
        id: JobId,
    },
    /// The operation does not apply to a job in its current state.
    #[error(
        "cannot {operation} job {id}: it is {state}, and {operation} needs a job that is {expected}"
    )]
    InvalidState {
        /// The job.
        id: JobId,
        /// Its state when asked.
        state: JobState,
        /// What was asked (`cancel`, `retry`).
        operation: &'static str,
        /// The states the operation accepts.
        expected: &'static str,
    },
    /// An argument was out of range or malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument or field.
        field: &'static str,
        /// What is wrong, and so what to fix.
        reason: String,
    },
    /// A job's payload is larger than the store accepts (see the store builders'
    /// `max_payload_bytes`; default [`DEFAULT_MAX_PAYLOAD_BYTES`](crate::DEFAULT_MAX_PAYLOAD_BYTES)).
    #[error(
        "payload of {size} bytes or more is over the limit of {limit} bytes; store large data \
         elsewhere and enqueue a reference to it, or raise max_payload_bytes"
    )]
    PayloadTooLarge {
        /// The payload's size as serialised JSON (counting stops just past the limit).
        size: usize,
        /// The store's limit.
        limit: usize,
    },
    /// A payload, result or metadata could not be converted to or from JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema migration failed; the database is left at the previous version.
    #[error("migration {version} ({name}) failed: {}", describe(.source))]
    Migration {
        /// Its number.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A database object floodgate relies on is older than this build expects: the SQL
    /// enqueue functions replaced by hand, or restored from an older dump.
    #[error(
        "the database's {object} is at version {found}, older than version {expected} which \
         this floodgate needs; recreate it: DELETE FROM {ledger} WHERE version >= {migration}, \
         then start again (that migration can run twice)"
    )]
    Outdated {
        /// What is outdated (`floodgate_enqueue`).
        object: String,
        /// Its version in the database.
        found: i32,
        /// The version this build needs.
        expected: i32,
        /// The migrations ledger table.
        ledger: String,
        /// The migration that creates the expected version.
        migration: i64,
    },
    /// The database holds something this version cannot read (written by a newer version?).
    #[error("unreadable data in the job store: {0}")]
    Corrupt(String),
    /// The store could not be opened: the database is unreachable, refused the login, or is
    /// not a database floodgate can use. `target` names it (without a password) and `reason`
    /// says what went wrong and what to do.
    #[error("cannot open the job store at {target}: {reason}")]
    Open {
        /// The file or server, e.g. `./floodgate.db` or `postgres://app@db:5432/jobs`.
        target: String,
        /// What went wrong, and what to do about it.
        reason: String,
    },
    /// The database failed during an operation.
    #[error("database error: {}", describe(.0))]
    Database(#[from] sqlx::Error),
}

/// A database error as the server said it (and its SQLSTATE), without the source position some
/// drivers append (`... at line 948` names a line of the *server's* C code, not of floodgate).
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("{} (SQLSTATE {code})", e.message()),
            None => e.message().to_owned(),
        },
        sqlx::Error::PoolTimedOut => "timed out waiting for a free database connection (the \
             pool is exhausted or the server is slow; raise max_connections or acquire_timeout)"
            .to_owned(),
        other => other.to_string(),
    }
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: String) -> Self {
        StoreError::Invalid { field, reason }
    }

    /// Why an update that names one job matched nothing: the job's state when looked up
    /// (`None`: no such job), or the error of that look-up.
    pub(crate) fn missed(
        id: JobId,
        state: Result<Option<String>, sqlx::Error>,
        operation: &'static str,
        expected: &'static str,
    ) -> Self {
        match state {
            Ok(None) => StoreError::NotFound { id },
            Ok(Some(state)) => match state.parse() {
                Ok(state) => StoreError::InvalidState {
                    id,
                    state,
                    operation,
                    expected,
                },
                Err(e) => e,
            },
            Err(e) => e.into(),
        }
    }

    /// Whether this is [`StoreError::LeaseLost`].
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, StoreError::LeaseLost { .. })
    }
}
