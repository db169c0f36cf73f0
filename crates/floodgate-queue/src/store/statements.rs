//! The statements both backends run with the same parameters, written once over sqlx's
//! database types: each backend passes its pool and its dialect's SQL text. (Text parameters
//! are bound as owned strings: borrowed ones defeat the compiler's `Send` proof for generic
//! database types.)

use std::future::Future;

use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::error::StoreError;
use crate::job::{Job, JobId};
use crate::store::rows::Columns;
use crate::store::{JobPage, ListJobs, shared};

/// A pool that runs the shared statements: `Pool<Sqlite>` and `Pool<Postgres>`.
pub(crate) trait Statements {
    /// The pool's row type.
    type Row: Columns;

    /// Runs `sql` with one job id; the row it returned, if any.
    fn by_id(
        &self,
        sql: &str,
        id: JobId,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs `sql` with two names (a leader role and its holder).
    fn by_names(
        &self,
        sql: &str,
        a: &str,
        b: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>>;

    /// Runs `sql` with the filters of `list` and a row limit; the rows.
    fn filtered(
        &self,
        sql: &str,
        list: &ListJobs,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>>;
}

impl<DB> Statements for Pool<DB>
where
    DB: Database,
    DB::Row: Columns,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    type Row = DB::Row;

    async fn by_id(&self, sql: &str, id: JobId) -> Result<Option<DB::Row>, sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(self)
            .await
    }

    async fn by_names(&self, sql: &str, a: &str, b: &str) -> Result<(), sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a.to_owned())
            .bind(b.to_owned())
            .execute(self)
            .await?;
        Ok(())
    }

    async fn filtered(
        &self,
        sql: &str,
        list: &ListJobs,
        limit: i64,
    ) -> Result<Vec<DB::Row>, sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(list.queue.clone())
            .bind(list.kind.clone())
            .bind(list.state.map(|s| s.as_str().to_owned()))
            .bind(list.before.map(|id| id.0))
            .bind(limit)
            .bind(list.error.clone())
            .bind(list.payload_path.clone())
            .bind(list.payload_value.clone())
            .fetch_all(self)
            .await
    }
}

/// `job`: the job, decoded, if it exists.
pub(crate) async fn job<P: Statements>(
    pool: &P,
    sql: &str,
    id: JobId,
    decode: impl Fn(&P::Row) -> Result<Job, StoreError>,
) -> Result<Option<Job>, StoreError> {
    pool.by_id(sql, id).await?.as_ref().map(decode).transpose()
}

/// The state of job `id`, if it exists (to explain an update that matched nothing).
pub(crate) async fn state_of<P: Statements>(
    pool: &P,
    sql: &str,
    id: JobId,
) -> Result<Option<String>, sqlx::Error> {
    pool.by_id(sql, id)
        .await?
        .map(|row| row.text("state"))
        .transpose()
}

/// `list`: one page, newest first.
pub(crate) async fn list<P: Statements>(
    pool: &P,
    sql: &str,
    list: &ListJobs,
    decode: impl Fn(&P::Row) -> Result<Job, StoreError>,
) -> Result<JobPage, StoreError> {
    list.check_filter()?;
    shared::list(list, decode, async |n| pool.filtered(sql, list, n).await).await
}

/// `count`: how many jobs match the filters of `list` (`sql` takes the same parameters as
/// the listing and returns one `count` row).
pub(crate) async fn count<P: Statements>(
    pool: &P,
    sql: &str,
    list: &ListJobs,
) -> Result<u64, StoreError> {
    list.check_filter()?;
    let rows = pool.filtered(sql, list, 0).await?;
    let n = rows
        .first()
        .map(|r| r.int("count"))
        .transpose()?
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// `leader_release`.
pub(crate) async fn leader_release<P: Statements>(
    pool: &P,
    sql: &str,
    name: &str,
    holder: &str,
) -> Result<(), StoreError> {
    pool.by_names(sql, name, holder).await?;
    Ok(())
}
