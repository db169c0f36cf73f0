//! Reading SQLite rows as jobs (times stored as microseconds since the epoch, JSON as text,
//! integers as 64-bit), and the clock the statements are given.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::StoreError;
use crate::store::rows::JobRow;
pub(super) use crate::store::rows::{job_from_row, read_state};
use crate::store::shared::micros;

/// Now, in microseconds since the epoch: SQLite has no clock of its own that statements
/// agree on, so every statement is given this one.
pub(super) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, micros)
}

/// A stored time.
pub(super) fn micros_to_time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} µs is out of range")))
}

impl JobRow for SqliteRow {
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        micros_to_time(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get::<Option<i64>, _>(column)?
            .map(micros_to_time)
            .transpose()
    }

    fn json(&self, column: &str) -> Result<Option<Value>, StoreError> {
        self.try_get::<Option<&str>, _>(column)?
            .map(|s| serde_json::from_str(s).map_err(StoreError::from))
            .transpose()
    }

    fn count(&self, column: &str) -> Result<u32, StoreError> {
        let n: i64 = self.try_get(column)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} = {n}")))
    }

    fn priority(&self) -> Result<u8, StoreError> {
        u8::try_from(self.try_get::<i64, _>("priority")?)
            .map_err(|_| StoreError::Corrupt("priority out of range".into()))
    }
}
