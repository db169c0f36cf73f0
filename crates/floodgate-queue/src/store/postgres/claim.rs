//! The PostgreSQL claim: one statement that locks the next runnable rows `FOR UPDATE SKIP
//! LOCKED` (claimers never wait on each other's rows) and leases them; continued from where the
//! last claim of the queue ended while that is recent (`cursor.rs`); and, for a kind with a
//! cluster-wide cap, counted and taken under a transaction-scoped advisory lock.

use sqlx::postgres::PgConnection;

use super::PgStore;
use super::cursor::Cursor;
use super::rows::job_from_row;
use crate::error::StoreError;
use crate::job::Job;
use crate::store::Claim;
use crate::store::shared::{Unreadable, decode_claimed, micros, room, sort_claimed};

impl PgStore {
    /// The claim itself: through the cursor first when there is one, then from the start.
    pub(super) async fn claim_jobs(
        &self,
        claim: &Claim,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        if let Some(max) = claim.cluster_limit {
            return self.claim_capped(claim, max, out).await;
        }
        let mut jobs = Vec::new();
        // A claim that skips groups leaves their jobs behind its cursor, like any job that
        // appears behind it: the next full claim (at most one rescan interval later) takes
        // them once they are no longer skipped.
        if let [queue] = claim.queues.as_slice()
            && let Some(cursor) = self.inner.cursors.get(queue, &claim.kinds)
        {
            jobs = self
                .claim_rows(claim, claim.limit, Some(cursor), out)
                .await?;
            if jobs.len() + out.len() == claim.limit as usize
                && let Some(last) = jobs.iter().max_by_key(|j| (j.run_at, j.id))
            {
                self.inner.cursors.after_fast(queue, &claim.kinds, last);
            }
        }
        let short = (claim.limit as usize).saturating_sub(jobs.len() + out.len());
        if short > 0 {
            let before = out.len();
            let full = self.claim_rows(claim, short as u32, None, out).await?;
            if let [queue] = claim.queues.as_slice() {
                let leased = full.len() + out.len() - before;
                let last = (leased == short).then(|| full.last()).flatten();
                self.inner.cursors.after_full(queue, &claim.kinds, last);
            }
            jobs.extend(full);
            sort_claimed(&mut jobs);
        }
        Ok(jobs)
    }

    /// One claim statement: from the start of the queue, or after `cursor`.
    async fn claim_rows(
        &self,
        claim: &Claim,
        limit: u32,
        cursor: Option<Cursor>,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        self.claim_rows_on(&mut conn, claim, limit, cursor, out)
            .await
    }

    /// A claim that never lets more than `max` jobs of its one kind run across the cluster:
    /// claims of that kind queue on a transaction-scoped advisory lock, count what runs and
    /// take only the difference, so racing nodes cannot both take the last slot.
    async fn claim_capped(
        &self,
        claim: &Claim,
        max: u32,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
            .bind(&self.inner.channel)
            .bind(&claim.kinds[0])
            .execute(&mut *tx)
            .await?;
        let running: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.sql.running_of_kind.as_str()))
                .bind(&claim.kinds[0])
                .fetch_one(&mut *tx)
                .await?;
        let room = room(max, running, claim.limit) as u32;
        let jobs = if room == 0 {
            Vec::new()
        } else {
            self.claim_rows_on(&mut tx, claim, room, None, out).await?
        };
        tx.commit().await?;
        Ok(jobs)
    }

    /// One claim statement on `conn`; rows it leased but could not read go to `out`.
    async fn claim_rows_on(
        &self,
        conn: &mut PgConnection,
        claim: &Claim,
        limit: u32,
        cursor: Option<Cursor>,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = &self.inner.sql;
        let kinds = (!claim.kinds.is_empty()).then_some(&claim.kinds);
        let text = match (claim.queues.as_slice(), cursor) {
            ([_], Some(_)) => sql.claim_after_cursor.as_str(),
            ([_], None) => sql.claim_one_queue.as_str(),
            _ => sql.claim_queues.as_str(),
        };
        // $1 owner, $2 lease in µs, $3 the queue (or queues), $4 kinds, $5 limit, then the
        // cursor's $6 priority, $7 run_at, $8 id, and last the groups to skip and the hold.
        let query = sqlx::query(sqlx::AssertSqlSafe(text))
            .bind(&claim.worker_id)
            .bind(micros(claim.lease_ttl));
        let query = match claim.queues.as_slice() {
            [one] => query.bind(one),
            many => query.bind(many),
        }
        .bind(kinds)
        .bind(i64::from(limit));
        let query = match cursor {
            Some(c) => query.bind(c.priority).bind(c.run_at).bind(c.id),
            None => query,
        };
        let skip = (!claim.skip_groups.is_empty()).then_some(&claim.skip_groups);
        let rows = query
            .bind(skip)
            .bind(claim.hold)
            .fetch_all(&mut *conn)
            .await?;
        let (jobs, unreadable) = decode_claimed(&rows, job_from_row)?;
        out.extend(unreadable);
        Ok(jobs)
    }
}
