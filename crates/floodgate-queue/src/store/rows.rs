//! Reading rows the same way on both backends: the columns whose types both decode alike (ids,
//! tokens, counts, flags, names, states), and what the shared logic builds from them. Each
//! backend's own `rows.rs` decodes the rest (a whole job, whose times and JSON are stored
//! differently).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::StoreError;
use crate::job::{Job, JobId, JobState, Lease, LeaseToken};
use crate::store::batch::Key;
use crate::store::{
    FailureGroup, LeaseStatus, PausedGroup, QueueStats, QueueStatsBuilder, Rescued,
};

/// A row of either backend, read through the column types both decode the same way.
pub(crate) trait Columns {
    /// An integer column (`bigint` on PostgreSQL, `INTEGER` on SQLite).
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A boolean column.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    /// A text column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A job state, stored as its name.
    fn state(&self, column: &str) -> Result<JobState, StoreError>;
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }

    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.try_get(column)
    }

    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }

    fn state(&self, column: &str) -> Result<JobState, StoreError> {
        self.try_get::<&str, _>(column)?.parse()
    }
}

/// A row of either backend as a job: the columns each stores in its own way (times, JSON,
/// small integers) are read by the backend's `rows.rs`.
pub(crate) trait JobRow: Columns {
    /// A time column.
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError>;
    /// A nullable time column.
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A nullable JSON column.
    fn json(&self, column: &str) -> Result<Option<Value>, StoreError>;
    /// An integer column that holds a `u32` (attempts).
    fn count(&self, column: &str) -> Result<u32, StoreError>;
    /// The priority column.
    fn priority(&self) -> Result<u8, StoreError>;
}

/// A job from a row of every column.
pub(crate) fn job_from_row<R: JobRow>(row: &R) -> Result<Job, StoreError> {
    Ok(Job {
        id: JobId(row.int("id")?),
        queue: row.text("queue")?,
        kind: row.text("kind")?,
        payload: row.json("payload")?.unwrap_or(Value::Null),
        priority: row.priority()?,
        run_at: row.time("run_at")?,
        state: row.state("state")?,
        attempt: row.count("attempt")?,
        max_attempts: row.count("max_attempts")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_token: row.opt_int("lease_token")?.map(LeaseToken),
        lease_expires_at: row.opt_time("lease_expires_at")?,
        cancel_requested: row.flag("cancel_requested")?,
        idempotency_key: row.opt_text("idempotency_key")?,
        ordering_key: row.opt_text("ordering_key")?,
        last_error: row.opt_text("last_error")?,
        result: row.json("result")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        finished_at: row.opt_time("finished_at")?,
        started_at: row.opt_time("started_at")?,
        metadata: row
            .json("metadata")?
            .unwrap_or_else(|| Value::Object(Default::default())),
    })
}

/// The finished counts still settling, from the `recent` column of an activity count.
pub(crate) fn recent_finished<R: Columns>(counts: &[R]) -> Result<Vec<QueueStats>, StoreError> {
    let mut stats = QueueStatsBuilder::default();
    for row in counts {
        let n = row.int("recent")?;
        if n > 0 {
            stats.count(row.text("queue")?, row.state("state")?, n, None);
        }
    }
    Ok(stats.build())
}

/// A row of `paused_groups`.
pub(crate) fn paused_group<R: JobRow>(row: &R) -> Result<PausedGroup, StoreError> {
    Ok(PausedGroup {
        name: row.text("name")?,
        reason: row.text("reason")?,
        paused_at: row.time("paused_at")?,
    })
}

/// A row of `failure_groups`.
pub(crate) fn failure_group<R: JobRow>(row: &R) -> Result<FailureGroup, StoreError> {
    Ok(FailureGroup {
        queue: row.text("queue")?,
        kind: row.text("kind")?,
        error: row.text("error")?,
        count: row.int("count")?.max(0) as u64,
        first_seen: row.time("first_seen")?,
        last_seen: row.time("last_seen")?,
    })
}

/// A job's state in `column`.
pub(crate) fn read_state<R: Columns>(row: &R, column: &str) -> Result<JobState, StoreError> {
    row.state(column)
}

/// The lease a claimed row carries (its id and token).
pub(crate) fn lease_of_row<R: Columns>(row: &R) -> Result<Lease, sqlx::Error> {
    Ok(Lease {
        id: JobId(row.int("id")?),
        token: LeaseToken(row.int("lease_token")?),
    })
}

/// The rows a batch insert returned: id, queue and idempotency key (see `batch.rs`).
pub(crate) fn written<R: Columns>(
    rows: &[R],
) -> Result<Vec<(i64, String, Option<String>)>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok((
                r.int("id")?,
                r.text("queue")?,
                r.opt_text("idempotency_key")?,
            ))
        })
        .collect()
}

/// The ids of existing jobs by (queue, idempotency key), from a look-up by key.
pub(crate) fn ids_by_key<R: Columns>(rows: &[R]) -> Result<HashMap<Key, JobId>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok((
                (row.text("queue")?, row.text("idempotency_key")?),
                JobId(row.int("id")?),
            ))
        })
        .collect()
}

/// One status per lease, in input order, from the rows a heartbeat extended (id, token and
/// the cancellation flag).
pub(crate) fn lease_statuses<R: Columns>(
    leases: &[Lease],
    rows: &[R],
) -> Result<Vec<LeaseStatus>, StoreError> {
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        found.insert(
            (row.int("id")?, row.int("lease_token")?),
            row.flag("cancel_requested")?,
        );
    }
    Ok(leases
        .iter()
        .map(|l| match found.get(&(l.id.0, l.token.0)) {
            None => LeaseStatus::Lost,
            Some(true) => LeaseStatus::CancelRequested,
            Some(false) => LeaseStatus::Extended,
        })
        .collect())
}

/// The jobs a rescue took back (id, previous owner, new state).
pub(crate) fn rescued<R: Columns>(rows: &[R]) -> Result<Vec<Rescued>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(Rescued {
                id: JobId(row.int("id")?),
                previous_owner: row.opt_text("lease_owner")?,
                state: row.state("state")?,
                queue: row.text("queue")?,
            })
        })
        .collect()
}

/// Queue stats from the queues table's rows (name, paused) and the counts per queue and
/// state (queue, state, n), with `age` reading how long the oldest runnable job of a count
/// row has waited (each backend measures it in its own way).
pub(crate) fn queue_stats<R: Columns>(
    paused: &[R],
    counts: &[R],
    age: impl Fn(&R) -> Result<Option<Duration>, StoreError>,
) -> Result<Vec<QueueStats>, StoreError> {
    let mut stats = QueueStatsBuilder::default();
    for row in paused {
        stats.paused(row.text("name")?, row.flag("paused")?);
    }
    for row in counts {
        if row.text("state")? == "held" {
            stats.held(row.text("queue")?, row.int("n")?);
            continue;
        }
        stats.count(
            row.text("queue")?,
            row.state("state")?,
            row.int("n")?,
            age(row)?,
        );
    }
    Ok(stats.build())
}
