//! The SQLite claim: one `UPDATE … RETURNING` statement, which takes the write lock before it
//! reads (as `BEGIN IMMEDIATE` does), so it never fails on a stale snapshot when another
//! process wrote first; it waits that process out with the busy timeout.

use super::SqliteStore;
use super::rows::{job_from_row, now_micros};
use crate::error::StoreError;
use crate::job::Job;
use crate::store::Claim;
use crate::store::shared::{Unreadable, decode_claimed, micros, room};

impl SqliteStore {
    /// The claim's statement; rows it leased but could not read go to `out`.
    pub(super) async fn claim_jobs(
        &self,
        claim: &Claim,
        out: &mut Vec<Unreadable>,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = &self.inner.sql;
        let now = now_micros();
        let (text, queues) = match claim.queues.as_slice() {
            [one] => (sql.claim_one_queue.as_str(), one.clone()),
            many => (
                sql.claim_queues.as_str(),
                serde_json::to_string(many).expect("strings serialise"),
            ),
        };
        let kinds = (!claim.kinds.is_empty())
            .then(|| serde_json::to_string(&claim.kinds).expect("strings serialise"));
        let skip = (!claim.skip_groups.is_empty())
            .then(|| serde_json::to_string(&claim.skip_groups).expect("strings serialise"));
        // ?1 owner, ?2 lease end, ?3 now, ?4 queue(s), ?5 kinds, ?6 limit, ?7 groups to skip.
        let query = sqlx::query(sqlx::AssertSqlSafe(text))
            .bind(&claim.worker_id)
            .bind(now.saturating_add(micros(claim.lease_ttl)))
            .bind(now)
            .bind(queues)
            .bind(kinds);
        let rows = match claim.cluster_limit {
            // One write statement in autocommit takes the write lock before it reads, like
            // BEGIN IMMEDIATE, so it never fails on a stale snapshot; it waits out other
            // processes' writes with the busy timeout.
            None => {
                query
                    .bind(i64::from(claim.limit))
                    .bind(skip)
                    .bind(claim.hold)
                    .fetch_all(&self.inner.writer)
                    .await?
            }
            // Count and claim under one write lock: no other process claims in between.
            Some(max) => {
                let mut tx = self.write_tx().await?;
                let running: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.running_of_kind.as_str()))
                        .bind(&claim.kinds[0])
                        .fetch_one(&mut *tx)
                        .await?;
                let room = room(max, running, claim.limit);
                let rows = if room == 0 {
                    Vec::new()
                } else {
                    query
                        .bind(room)
                        .bind(skip)
                        .bind(claim.hold)
                        .fetch_all(&mut *tx)
                        .await?
                };
                tx.commit().await?;
                rows
            }
        };
        let (jobs, unreadable) = decode_claimed(&rows, job_from_row)?;
        out.extend(unreadable);
        Ok(jobs)
    }
}
