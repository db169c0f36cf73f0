//! [`Store`] and [`OutboxStore`] on SQLite: each operation binds its statement (times as
//! microseconds from the process's clock, batches as JSON arrays) and leaves the rest to the
//! logic both backends share (`store/shared.rs`, `store/fence.rs`). Writes go through the one
//! writer pool, reads (`job`, `list`, `queue_stats`) through the read-only pool.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite};

use super::SqliteStore;
use super::rows::{job_from_row, micros_to_time, now_micros, read_state};
use crate::error::StoreError;
use crate::job::{Enqueued, Job, JobId, JobState, Lease, NewJob};
use crate::store::shared::{self, micros};
use crate::store::wakeup::Wakeups;
use crate::store::{
    Claim, Completion, FailureGroup, HeldStatus, JobPage, LeaseStatus, ListJobs, OutboxStore,
    PausedGroup, QueueActivity, QueueStats, Rescued, Retention, Store, fence, rows, statements,
};

/// A statement with its parameters bound.
type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

impl SqliteStore {
    /// A fenced single-job statement with the lease bound (`?1` its job, `?2` its token).
    fn lease_bound<'q>(&self, sql: &'q str, lease: Lease) -> Query<'q> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease.id.0)
            .bind(lease.token.0)
    }

    /// `start_held` or `release_held` (`sql`): the statuses and the queues of the jobs changed.
    async fn held(
        &self,
        sql: &str,
        leases: &[Lease],
    ) -> Result<(Vec<HeldStatus>, Vec<String>), StoreError> {
        let wanted: Vec<(i64, i64)> = leases.iter().map(|l| (l.id.0, l.token.0)).collect();
        shared::held(
            leases,
            async || {
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::to_string(&wanted)?)
                    .bind(now_micros())
                    .fetch_all(&self.inner.writer)
                    .await?)
            },
            async |missing| {
                let sql = self.inner.sql.held_states.as_str();
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::to_string(&missing)?)
                    .fetch_all(&self.inner.reader)
                    .await?)
            },
        )
        .await
    }

    /// Runs a fenced update on the writer: `read` of the row it returned, `None` when it
    /// matched nothing (the lease was lost).
    async fn fenced<T>(
        &self,
        update: Query<'_>,
        read: impl FnOnce(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        update
            .fetch_optional(&self.inner.writer)
            .await?
            .as_ref()
            .map(read)
            .transpose()
    }

    /// The state of job `id` (to explain an update that matched nothing).
    async fn state_of(&self, id: JobId) -> Result<Option<String>, sqlx::Error> {
        statements::state_of(&self.inner.writer, &self.inner.sql.state_of, id).await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        shared::set_paused(&self.inner.observe, queue, paused, async || {
            sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.set_paused.as_str()))
                .bind(queue)
                .bind(paused)
                .bind(now_micros())
                .execute(&self.inner.writer)
                .await
        })
        .await
    }
}

impl Store for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_many(vec![job]).await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let out = shared::enqueue(
            &self.inner.observe,
            self.inner.max_payload_bytes,
            &jobs,
            async || {
                let mut conn = self.inner.writer.acquire().await?;
                self.insert_all(&mut conn, &jobs).await
            },
        )
        .await?;
        self.notify(jobs.iter().map(|j| j.queue.as_str()));
        Ok(out)
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
        self.notify(queues.iter().map(String::as_str));
        Ok(statuses)
    }

    async fn extend_leases(
        &self,
        worker_id: &str,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        shared::extend_leases(worker_id, leases, ttl, async || {
            let now = now_micros();
            let wanted: Vec<(i64, i64)> = leases.iter().map(|l| (l.id.0, l.token.0)).collect();
            Ok(
                sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.extend.as_str()))
                    .bind(serde_json::to_string(&wanted)?)
                    .bind(worker_id)
                    .bind(now.saturating_add(micros(ttl)))
                    .bind(now)
                    .fetch_all(&self.inner.writer)
                    .await?,
            )
        })
        .await
    }

    async fn complete(&self, lease: Lease, result: Option<Value>) -> Result<(), StoreError> {
        fence::complete(&self.inner.observe, lease, result, async |result| {
            let result = result.map(|r| serde_json::to_string(&r)).transpose()?;
            let update = self
                .lease_bound(&self.inner.sql.complete, lease)
                .bind(result)
                .bind(now_micros());
            self.fenced(update, |_| Ok(())).await
        })
        .await
    }

    async fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<JobId>, StoreError> {
        fence::complete_many(&self.inner.observe, &completions, async || {
            let batch = completions
                .iter()
                .map(|c| {
                    let result = c.result.as_ref().map(serde_json::to_string).transpose()?;
                    Ok((c.lease.id.0, c.lease.token.0, result))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(
                sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.complete_many.as_str()))
                    .bind(serde_json::to_string(&batch)?)
                    .bind(now_micros())
                    .fetch_all(&self.inner.writer)
                    .await?,
            )
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
            .bind(retry_at.timestamp_micros())
            .bind(now_micros());
        let update = self.fenced(update, |row| read_state(row, "state"));
        fence::fail(&self.inner.observe, lease, update).await
    }

    async fn dead(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let update = self
            .lease_bound(&self.inner.sql.dead, lease)
            .bind(error)
            .bind(now_micros());
        fence::dead(&self.inner.observe, lease, self.fenced(update, |_| Ok(()))).await
    }

    async fn snooze(&self, lease: Lease, until: DateTime<Utc>) -> Result<(), StoreError> {
        let update = self
            .lease_bound(&self.inner.sql.snooze, lease)
            .bind(until.timestamp_micros())
            .bind(now_micros());
        let update = self.fenced(update, |row| read_state(row, "state"));
        fence::snooze(&self.inner.observe, lease, update).await
    }

    async fn record_attempt(&self, lease: Lease, attempt: Value) -> Result<(), StoreError> {
        fence::record_attempt(&self.inner.observe, lease, attempt, async |text| {
            let update = self
                .lease_bound(&self.inner.sql.record_attempt, lease)
                .bind(text)
                .bind(now_micros());
            self.fenced(update, |_| Ok(())).await
        })
        .await
    }

    async fn rescue_expired(&self, limit: u32) -> Result<Vec<Rescued>, StoreError> {
        let now = now_micros();
        let at = micros_to_time(now)?.to_rfc3339();
        let rescue = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.rescue.as_str()))
            .bind(now)
            .bind(at)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.inner.writer);
        let rescued = shared::rescue(&self.inner.observe, rescue).await?;
        // Workers waiting on these queues take the jobs back now, not at their next poll.
        self.notify(shared::queues_to_wake(&rescued));
        Ok(rescued)
    }

    async fn retry_dead(&self, id: JobId) -> Result<(), StoreError> {
        let update = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.retry_dead.as_str()))
            .bind(id.0)
            .bind(now_micros())
            .fetch_optional(&self.inner.writer);
        let queue = fence::retry_dead(id, update, self.state_of(id)).await?;
        self.notify([queue.as_str()]);
        Ok(())
    }

    async fn retry_dead_all(&self, queue: &str, kind: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.retry_dead_all.as_str()))
            .bind(queue)
            .bind(kind)
            .bind(now_micros())
            .execute(&self.inner.writer)
            .await?;
        if done.rows_affected() > 0 {
            self.notify([queue]);
        }
        Ok(done.rows_affected())
    }

    async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        let update = sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.cancel.as_str()))
            .bind(id.0)
            .bind(now_micros())
            .fetch_optional(&self.inner.writer);
        fence::cancel(id, update, self.state_of(id)).await
    }

    async fn pause(&self, queue: &str) -> Result<(), StoreError> {
        self.set_paused(queue, true).await
    }

    async fn resume(&self, queue: &str) -> Result<(), StoreError> {
        self.set_paused(queue, false).await?;
        self.notify([queue]);
        Ok(())
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let now = now_micros();
        let counts = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.stats.as_str()))
            .bind(now)
            .fetch_all(&self.inner.reader)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.reader)
            .await?;
        rows::queue_stats(&paused, &counts, |row: &SqliteRow| {
            Ok(row
                .try_get::<Option<i64>, _>("oldest")?
                .map(|oldest| Duration::from_micros(now.saturating_sub(oldest).max(0) as u64)))
        })
    }

    async fn queue_activity(
        &self,
        finished_since: DateTime<Utc>,
        settle: Duration,
    ) -> Result<QueueActivity, StoreError> {
        let now = now_micros();
        let since = finished_since.timestamp_micros();
        let settled_until = now.saturating_sub(micros(settle)).max(since);
        let counts = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.activity.as_str()))
            .bind(since)
            .bind(settled_until)
            .fetch_all(&self.inner.reader)
            .await?;
        let paused = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_queues.as_str()))
            .fetch_all(&self.inner.reader)
            .await?;
        let queues = rows::queue_stats(&paused, &counts, |row: &SqliteRow| {
            let runnable = matches!(
                read_state(row, "state")?,
                JobState::Pending | JobState::Failed
            );
            Ok(row
                .try_get::<Option<i64>, _>("oldest")?
                .filter(|oldest| runnable && *oldest <= now)
                .map(|oldest| Duration::from_micros((now - oldest) as u64)))
        })?;
        Ok(QueueActivity {
            queues,
            recent: rows::recent_finished(&counts)?,
            settled_until: micros_to_time(settled_until)?,
        })
    }

    async fn listen(&self) -> Result<Wakeups, StoreError> {
        super::wakeup::listen(self).await.map(Wakeups::sqlite)
    }

    async fn delete_finished(&self, retention: Retention) -> Result<u64, StoreError> {
        let now = now_micros();
        shared::delete_finished(&retention, move || async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.delete_finished.as_str()))
                .bind(now.saturating_sub(micros(retention.succeeded)))
                .bind(now.saturating_sub(micros(retention.dead)))
                .bind(i64::from(retention.batch_size))
                .execute(&self.inner.writer)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        statements::job(&self.inner.reader, &self.inner.sql.job, id, job_from_row).await
    }

    async fn list(&self, list: &ListJobs) -> Result<JobPage, StoreError> {
        statements::list(&self.inner.reader, &self.inner.sql.list, list, job_from_row).await
    }

    async fn inbox_delete_older_than(
        &self,
        age: Duration,
        batch_size: u32,
    ) -> Result<u64, StoreError> {
        let cutoff = now_micros().saturating_sub(micros(age));
        shared::inbox_delete(batch_size, move |batch| async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_delete.as_str()))
                .bind(cutoff)
                .bind(batch)
                .execute(&self.inner.writer)
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
            let now = now_micros();
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.leader_acquire.as_str()))
                .bind(name)
                .bind(holder)
                .bind(now.saturating_add(micros(ttl)))
                .bind(now)
                .fetch_optional(&self.inner.writer)
                .await
        })
        .await
    }

    async fn leader_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = &self.inner.sql.leader_release;
        statements::leader_release(&self.inner.writer, sql, name, holder).await
    }

    async fn count(&self, list: &ListJobs) -> Result<u64, StoreError> {
        statements::count(&self.inner.reader, &self.inner.sql.count, list).await
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
            .fetch_all(&self.inner.reader)
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
                .bind(since.timestamp_micros())
                .bind(i64::from(limit.clamp(1, 100_000)))
                .fetch_all(&self.inner.reader)
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
            .bind(now_micros())
            .execute(&self.inner.writer)
            .await?;
        Ok(())
    }

    async fn resume_group(&self, group: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.resume_group.as_str()))
            .bind(group)
            .execute(&self.inner.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn paused_groups(&self) -> Result<Vec<PausedGroup>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.paused_groups.as_str()))
            .fetch_all(&self.inner.reader)
            .await?;
        rows.iter().map(rows::paused_group).collect()
    }
}

impl OutboxStore for SqliteStore {
    type Database = Sqlite;

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.write_tx().await
    }

    async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        let mut out = self.enqueue_many_in(tx, vec![job]).await?;
        Ok(out.pop().expect("one job in, one result out"))
    }

    async fn enqueue_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let max = self.inner.max_payload_bytes;
        let out = shared::enqueue(&self.inner.observe, max, &jobs, async || {
            self.insert_all(tx, &jobs).await
        })
        .await?;
        // Listeners may look before the caller commits; the job is then found at the next
        // wake-up or poll. Through `begin()` the caller holds the writer, so a claim prompted
        // by this waits for the commit and finds the job.
        self.notify(jobs.iter().map(|j| j.queue.as_str()));
        Ok(out)
    }

    async fn inbox_record(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        consumer: &str,
        message_key: &str,
    ) -> Result<bool, StoreError> {
        shared::inbox_record(consumer, message_key, async || {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.inner.sql.inbox_record.as_str()))
                .bind(consumer)
                .bind(message_key)
                .bind(now_micros())
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
