//! Writing jobs on PostgreSQL: one job with a plain `INSERT`, a batch as one
//! `INSERT … SELECT FROM UNNEST(…)` however many jobs, then one look-up of the idempotency
//! keys that were taken already.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;

use super::PgStore;
use crate::error::StoreError;
use crate::job::{Enqueued, JobId, NewJob};
use crate::store::batch::{Written, idempotency_invisible};
use crate::store::rows;

impl PgStore {
    /// Inserts one job, or finds the job that holds its idempotency key.
    pub(super) async fn insert_one(
        &self,
        conn: &mut PgConnection,
        job: &NewJob,
    ) -> Result<Enqueued, StoreError> {
        let sql = &self.inner.sql;
        let payload = serde_json::to_string(&job.payload)?;
        let metadata = serde_json::to_string(&job.metadata)?;
        // A duplicate key whose row vanishes between the insert and the look-up (retention
        // deleted it) is inserted afresh on the next round.
        for _ in 0..3 {
            let inserted: Option<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.insert_one.as_str()))
                    .bind(&job.queue)
                    .bind(&job.kind)
                    .bind(&payload)
                    .bind(i16::from(job.priority))
                    .bind(job.run_at)
                    .bind(job.max_attempts as i32)
                    .bind(&job.idempotency_key)
                    .bind(&job.ordering_key)
                    .bind(&metadata)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(id) = inserted {
                return Ok(Enqueued {
                    id: JobId(id),
                    inserted: true,
                });
            }
            let existing = self
                .ids_by_key(&mut *conn, &[(&job.queue, job.idempotency_key.as_deref())])
                .await?;
            if let Some(id) = existing.values().next() {
                return Ok(Enqueued {
                    id: *id,
                    inserted: false,
                });
            }
        }
        Err(idempotency_invisible(&job.queue))
    }

    /// The ids of existing jobs with these (queue, idempotency key) pairs.
    async fn ids_by_key(
        &self,
        conn: &mut PgConnection,
        keys: &[(&String, Option<&str>)],
    ) -> Result<HashMap<(String, String), JobId>, StoreError> {
        let (queues, keys): (Vec<&str>, Vec<&str>) = keys
            .iter()
            .filter_map(|(q, k)| k.map(|k| (q.as_str(), k)))
            .unzip();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.ids_by_key.as_str()))
            .bind(queues)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await?;
        rows::ids_by_key(&rows)
    }

    /// Inserts a batch with one statement (plus one look-up of taken idempotency keys).
    pub(super) async fn insert_many(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.len() == 1 {
            return Ok(vec![self.insert_one(conn, &jobs[0]).await?]);
        }
        let mut queues = Vec::with_capacity(jobs.len());
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut payloads = Vec::with_capacity(jobs.len());
        let mut priorities = Vec::with_capacity(jobs.len());
        let mut run_ats = Vec::with_capacity(jobs.len());
        let mut attempts = Vec::with_capacity(jobs.len());
        let mut idem = Vec::with_capacity(jobs.len());
        let mut ordering = Vec::with_capacity(jobs.len());
        let mut metadata = Vec::with_capacity(jobs.len());
        for job in jobs {
            queues.push(job.queue.as_str());
            kinds.push(job.kind.as_str());
            payloads.push(serde_json::to_string(&job.payload)?);
            priorities.push(i16::from(job.priority));
            run_ats.push(job.run_at);
            attempts.push(job.max_attempts as i32);
            idem.push(job.idempotency_key.as_deref());
            ordering.push(job.ordering_key.as_deref());
            metadata.push(serde_json::to_string(&job.metadata)?);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.insert_many.as_str()))
            .bind(queues)
            .bind(kinds)
            .bind(payloads)
            .bind(priorities)
            .bind(run_ats)
            .bind(attempts)
            .bind(idem)
            .bind(ordering)
            .bind(metadata)
            .fetch_all(&mut *conn)
            .await?;
        let written = Written::match_rows(jobs, rows::written(&rows)?)?;
        let existing = if written.missing().is_empty() {
            HashMap::new()
        } else {
            let keys: Vec<(&String, Option<&str>)> = written
                .missing()
                .iter()
                .map(|(q, k)| (q, Some(k.as_str())))
                .collect();
            self.ids_by_key(conn, &keys).await?
        };
        written
            .finish(jobs, &existing)
            .ok_or_else(|| idempotency_invisible(&jobs[0].queue))
    }
}
