//! Running the SQLite migrations: all pending ones in one `BEGIN IMMEDIATE` transaction, so
//! two processes opening a new file at once migrate it once.

use sqlx::sqlite::SqlitePool;

use super::rows::now_micros;
use crate::error::StoreError;
use crate::store::migrate::{self, Names};

/// Brings the schema up to date.
pub(super) async fn run(pool: &SqlitePool, names: &Names) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let table = names.render("{t}migrations");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_at INTEGER NOT NULL)"
    )))
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut *tx)
            .await?;
    let record = format!("INSERT INTO {table} (version, name, applied_at) VALUES (?1, ?2, ?3)");
    for m in migrate::pending(&applied, migrate::SQLITE)? {
        let run = async {
            sqlx::raw_sql(sqlx::AssertSqlSafe(m.render(names)))
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(record.as_str()))
                .bind(m.version)
                .bind(m.name)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            Ok(())
        };
        m.apply("SQLite", run).await?;
    }
    tx.commit().await?;
    Ok(())
}
