//! Reading PostgreSQL rows as jobs: times are `timestamptz`, JSON is `jsonb`, attempts are
//! `integer` and the priority `smallint`, all read natively.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::StoreError;
use crate::store::rows::JobRow;
pub(super) use crate::store::rows::{job_from_row, read_state};

impl JobRow for PgRow {
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn json(&self, column: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn count(&self, column: &str) -> Result<u32, StoreError> {
        let n: i32 = self.try_get(column)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} = {n}")))
    }

    fn priority(&self) -> Result<u8, StoreError> {
        u8::try_from(self.try_get::<i16, _>("priority")?)
            .map_err(|_| StoreError::Corrupt("priority out of range".into()))
    }
}
