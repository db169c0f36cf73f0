//! [`Store`] and [`OutboxStore`] on PostgreSQL: each operation binds its statement (times
//! from the database's clock, `now()`, so nodes with skewed clocks agree; batches as arrays)
//! and leaves the rest to the logic both backends share (`store/shared.rs`,
//! `store/fence.rs`). Everything runs on the store's one pool.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Postgres, Row};

use super::PgStore;
use super::rows::{job_from_row, read_state};
use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, NewJob};
use crate::store::shared::{self, micros};
use crate::store::wakeup::Wakeups;
use crate::store::{
    Claim, Completion, FailureGroup, HeldStatus, JobPage, LeaseStatus, ListJobs, OutboxStore,
    PausedGroup, QueueActivity, QueueStats, Rescued, Retention, Store, fence, rows, statements,
};

/// A statement with its parameters bound.
type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

impl PgStore {
    /// A fenced single-job statement with the lease bound (`$1` its job, `$2` its token).
    fn lease_bound<'q>(&self, sql: &'q str, lease: Lease) -> Query<'q> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease.id.0)
            .bind(lease.token.0)
    }

    /// Runs a fenced update that returns nothing: `None` when it matched no row (the lease
    /// was lost).
    async fn fenced(&self, update: Query<'_>) -> Result<Option<()>, StoreError> {
        let done = update.execute(&self.inner.pool).await?;
        Ok((done.rows_affected() == 1).then_some(()))
    }

    /// Runs a fenced update that returns the job's new state: `None` when it matched no row.
    async fn fenced_state(&self, update: Query<'_>) -> Result<Option<JobState>, StoreError> {
        update
            .fetch_optional(&self.inner.pool)
            .await?
            .map(|row| read_state(&row, "state"))
            .transpose()
    }

    /// The state of job `id` (to explain an update that matched nothing).
    async fn state_of(&self, id: JobId) -> Result<Option<String>, sqlx::Error> {
        statements::state_of(&self.inner.pool, &self.inner.sql.state_of, id).await
    }

    /// `start_held` or `release_held` (`sql`): the statuses and the queues of the jobs changed.
    async fn held(
        &self,
        sql: &str,
        leases: &[Lease],
    ) -> Result<(Vec<HeldStatus>, Vec<String>), StoreError> {
        let ids: Vec<i64> = leases.iter().map(|l| l.id.0).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token.0).collect();
        shared::held(
            leases,
            async || {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&ids)
                    .bind(&tokens)
                    .fetch_all(&self.inner.pool)
                    .await?)
            },
            async |missing| {
                let sql = self.inner.sql.held_states.as_str();
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(missing)
                    .fetch_all(&self.inner.pool)
                    .await?)
            },
        )
        .await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        shared::set_paused(&self.inner.observe, queue, paused, async || {
            sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.set_paused.as_str()))
                .bind(queue)
                .bind(paused)
                .execute(&self.inner.pool)
                .await
        })
        .await
    }
}

impl Store for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let jobs = std::slice::from_ref(&job);
        let max = self.inner.max_payload_bytes;
        let mut out = shared::enqueue(&self.inner.observe, max, jobs, async || {
            let mut conn = self.inner.pool.acquire().await?;
            Ok(vec![self.insert_one(&mut conn, &job).await?])
        })
        .await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let max = self.inner.max_payload_bytes;
        shared::enqueue(&self.inner.observe, max, &jobs, async || {
            let mut tx = self.inner.pool.begin().await?;
            let out = self.insert_many(&mut tx, &jobs).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Job>, StoreError> {
        shared::claim(self, &self.inner.observe, claim, async |out| {
            self.claim_jobs(claim, out).await
        })
        .await
    }

    async fn start_held(&self, leases: &[Lease]) -> Result<Vec<HeldStatus>, StoreError> {
        Ok(self.held(&self.inner.sql.start_held, leases).await?.0)
    }

    async fn release_held(&self, leases: &[Lease]) -> Result<Vec<HeldStatus>, StoreError> {
        let (statuses, queues) = self.held(&self.inner.sql.release_held, leases).await?;
        for queue in queues {
            // Back in their place, behind this store's claim cursor.
            self.inner.cursors.forget(&queue);
            self.notify(&queue).await?;
        }
        Ok(statuses)
    }

    async fn extend_leases(
        &self,
        worker_id: &str,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        shared::extend_leases(worker_id, leases, ttl, async || {
            let ids: Vec<i64> = leases.iter().map(|l| l.id.0).collect();
            let tokens: Vec<i64> = leases.iter().map(|l| l.token.0).collect();
            Ok(
                sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.extend.as_str()))
                    .bind(ids)
                    .bind(tokens)
                    .bind(worker_id)
                    .bind(micros(ttl))
                    .fetch_all(&self.inner.pool)
                    .await?,
            )
        })
        .await
    }

    async fn complete(&self, lease: Lease, result: Option<Value>) -> Result<(), StoreError> {
        fence::complete(&self.inner.observe, lease, result, async |result| {
            let update = self
                .lease_bound(&self.inner.sql.complete, lease)
                .bind(result);
            self.fenced(update).await
        })
        .await
    }

    async fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<JobId>, StoreError> {
        fence::complete_many(&self.inner.observe, &completions, async || {
            let ids: Vec<i64> = completions.iter().map(|c| c.lease.id.0).collect();
            let tokens: Vec<i64> = completions.iter().map(|c| c.lease.token.0).collect();
            let results = completions
                .iter()
                .map(|c| c.result.as_ref().map(serde_json::to_string).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let sql = self.inner.sql.complete_many.as_str();
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(ids)
                .bind(tokens)
                .bind(results)
                .fetch_all(&self.inner.pool)
                .await?)
        })
        .await
    }

    async fn fail(
        &self,
        lease: Lease,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<JobState, StoreError> {
        let update = self
            .lease_bound(&self.inner.sql.fail, lease)
            .bind(error)
            .bind(retry_at);
        fence::fail(&self.inner.observe, lease, self.fenced_state(update)).await
    }

    async fn dead(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let update = self.lease_bound(&self.inner.sql.dead, lease).bind(error);
        fence::dead(&self.inner.observe, lease, self.fenced(update)).await
    }

    async fn snooze(&self, lease: Lease, until: DateTime<Utc>) -> Result<(), StoreError> {
        let update = self.lease_bound(&self.inner.sql.snooze, lease).bind(until);
        fence::snooze(&self.inner.observe, lease, self.fenced_state(update)).await
    }

    async fn record_attempt(&self, lease: Lease, attempt: Value) -> Result<(), StoreError> {
        fence::record_attempt(&self.inner.observe, lease, attempt, async |text| {
            let update = self
                .lease_bound(&self.inner.sql.record_attempt, lease)
                .bind(text);
            self.fenced(update).await
        })
        .await
    }

    async fn rescue_expired(&self, limit: u32) -> Result<Vec<Rescued>, StoreError> {
        let rescue = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.rescue.as_str()))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.inner.pool);
        let rescued = shared::rescue(&self.inner.observe, rescue).await?;
        // Workers waiting on these queues take the jobs back now, not at their next poll.
        for queue in shared::queues_to_wake(&rescued) {
            self.notify(queue).await?;
        }
        Ok(rescued)
    }

    async fn retry_dead(&self, id: JobId) -> Result<(), StoreError> {
        let update = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.retry_dead.as_str()))
            .bind(id.0)
            .fetch_optional(&self.inner.pool);
        let queue = fence::retry_dead(id, update, self.state_of(id)).await?;
        self.notify(&queue).await
    }

    async fn retry_dead_all(&self, queue: &str, kind: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.retry_dead_all.as_str()))
            .bind(queue)
            .bind(kind)
            .execute(&self.inner.pool)
            .await?;
        if done.rows_affected() > 0 {
            self.notify(queue).await?;
        }
        Ok(done.rows_affected())
    }

    async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        let update = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.cancel.as_str()))
            .bind(id.0)
            .fetch_optional(&self.inner.pool);
        fence::cancel(id, update, self.state_of(id)).await
    }

    async fn pause(&self, queue: &str) -> Result<(), StoreError> {
        self.set_paused(queue, true).await
    }

    async fn resume(&self, queue: &str) -> Result<(), StoreError> {
        self.set_paused(queue, false).await?;
        self.notify(queue).await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let counts = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.stats.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        rows::queue_stats(&paused, &counts, |row: &PgRow| {
            Ok(row
                .try_get::<Option<i64>, _>("oldest_age_us")?
                .map(|us| Duration::from_micros(us.max(0) as u64)))
        })
    }

    async fn queue_activity(
        &self,
        finished_since: DateTime<Utc>,
        settle: Duration,
    ) -> Result<QueueActivity, StoreError> {
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.inner.pool)
            .await?;
        let settled_until =
            (now - chrono::Duration::from_std(settle).unwrap_or_default()).max(finished_since);
        let counts = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.activity.as_str()))
            .bind(finished_since)
            .bind(settled_until)
            .fetch_all(&self.inner.pool)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        let queues = rows::queue_stats(&paused, &counts, |row: &PgRow| {
            let runnable = matches!(
                read_state(row, "state")?,
                JobState::Pending | JobState::Failed
            );
            Ok(row
                .try_get::<Option<i64>, _>("oldest_age_us")?
                .filter(|us| runnable && *us >= 0)
                .map(|us| Duration::from_micros(us as u64)))
        })?;
        Ok(QueueActivity {
            queues,
            recent: rows::recent_finished(&counts)?,
            settled_until,
        })
    }

    async fn listen(&self) -> Result<Wakeups, StoreError> {
        super::wakeup::listen(self).await.map(Wakeups::postgres)
    }

    async fn delete_finished(&self, retention: Retention) -> Result<u64, StoreError> {
        shared::delete_finished(&retention, move || async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.delete_finished.as_str()))
                .bind(micros(retention.succeeded))
                .bind(micros(retention.dead))
                .bind(i64::from(retention.batch_size))
                .execute(&self.inner.pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        statements::job(&self.inner.pool, &self.inner.sql.job, id, job_from_row).await
    }

    async fn list(&self, list: &ListJobs) -> Result<JobPage, StoreError> {
        statements::list(&self.inner.pool, &self.inner.sql.list, list, job_from_row).await
    }

    async fn inbox_delete_older_than(
        &self,
        age: Duration,
        batch_size: u32,
    ) -> Result<u64, StoreError> {
        shared::inbox_delete(batch_size, move |batch| async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_delete.as_str()))
                .bind(micros(age))
                .bind(batch)
                .execute(&self.inner.pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn leader_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        shared::leader_acquire(name, holder, async || {
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.leader_acquire.as_str()))
                .bind(name)
                .bind(holder)
                .bind(micros(ttl))
                .fetch_optional(&self.inner.pool)
                .await
        })
        .await
    }

    async fn leader_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = &self.inner.sql.leader_release;
        statements::leader_release(&self.inner.pool, sql, name, holder).await
    }

    async fn count(&self, list: &ListJobs) -> Result<u64, StoreError> {
        statements::count(&self.inner.pool, &self.inner.sql.count, list).await
    }

    async fn failure_groups(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FailureGroup>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.failure_groups.as_str()))
            .bind(queue)
            .bind(kind)
            .bind(i64::from(limit.clamp(1, 1_000)))
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(rows::failure_group).collect()
    }

    async fn recent_waits(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Duration>, StoreError> {
        let waits: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.recent_waits.as_str()))
                .bind(since)
                .bind(i64::from(limit.clamp(1, 100_000)))
                .fetch_all(&self.inner.pool)
                .await?;
        Ok(waits
            .into_iter()
            .map(|us| Duration::from_micros(us.max(0) as u64))
            .collect())
    }

    async fn pause_group(&self, group: &str, reason: &str) -> Result<(), StoreError> {
        crate::job::validate_name("group", group)?;
        sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.pause_group.as_str()))
            .bind(group)
            .bind(reason)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    async fn resume_group(&self, group: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.resume_group.as_str()))
            .bind(group)
            .execute(&self.inner.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn paused_groups(&self) -> Result<Vec<PausedGroup>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_groups.as_str()))
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(rows::paused_group).collect()
    }
}

impl OutboxStore for PgStore {
    type Database = Postgres;

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self.inner.pool.begin().await?)
    }

    async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        let jobs = std::slice::from_ref(&job);
        let max = self.inner.max_payload_bytes;
        let mut out = shared::enqueue(&self.inner.observe, max, jobs, async || {
            Ok(vec![self.insert_one(tx, &job).await?])
        })
        .await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let max = self.inner.max_payload_bytes;
        shared::enqueue(&self.inner.observe, max, &jobs, async || {
            self.insert_many(tx, &jobs).await
        })
        .await
    }

    async fn inbox_record(
        &self,
        tx: &mut sqlx::Transaction<'_, Postgres>,
        consumer: &str,
        message_key: &str,
    ) -> Result<bool, StoreError> {
        shared::inbox_record(consumer, message_key, async || {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_record.as_str()))
                .bind(consumer)
                .bind(message_key)
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
