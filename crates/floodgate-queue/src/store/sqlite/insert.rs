//! Writing a batch of jobs on SQLite: the whole batch as one JSON array bound to one
//! statement, then one look-up of the idempotency keys that were taken already.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::sqlite::SqliteConnection;

use super::SqliteStore;
use super::rows::now_micros;
use crate::error::StoreError;
use crate::job::{Enqueued, NewJob};
use crate::store::batch::{Written, idempotency_invisible};
use crate::store::rows;

impl SqliteStore {
    /// Inserts a batch with one statement (plus one look-up of taken idempotency keys).
    pub(super) async fn insert_all(
        &self,
        conn: &mut SqliteConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>, StoreError> {
        let sql = &self.inner.sql;
        let batch = jobs
            .iter()
            .map(|job| {
                Ok(serde_json::json!({
                    "q": job.queue,
                    "k": job.kind,
                    "p": serde_json::to_string(&job.payload)?,
                    "pr": job.priority,
                    "r": job.run_at.map(|t| t.timestamp_micros()),
                    "m": job.max_attempts,
                    "i": job.idempotency_key,
                    "o": job.ordering_key,
                    "md": serde_json::to_string(&job.metadata)?,
                }))
            })
            .collect::<Result<Vec<Value>, StoreError>>()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.insert.as_str()))
            .bind(serde_json::to_string(&batch)?)
            .bind(now_micros())
            .fetch_all(&mut *conn)
            .await?;
        let written = Written::match_rows(jobs, rows::written(&rows)?)?;
        let mut existing = HashMap::new();
        if !written.missing().is_empty() {
            let wanted = serde_json::to_string(written.missing())?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.ids_by_key.as_str()))
                .bind(wanted)
                .fetch_all(&mut *conn)
                .await?;
            existing = rows::ids_by_key(&rows)?;
        }
        written
            .finish(jobs, &existing)
            .ok_or_else(|| idempotency_invisible(&jobs[0].queue))
    }
}
