//! Running the PostgreSQL migrations: all pending ones in one transaction, under a
//! transaction-scoped advisory lock per schema, so many nodes may start at once (one
//! migrates, the others wait and then find it done).

use sqlx::postgres::PgPool;

use crate::error::StoreError;
use crate::store::migrate::{self, Names};

/// Creates the schema if asked for and brings it up to date.
pub(super) async fn run(
    pool: &PgPool,
    schema: Option<&str>,
    names: &Names,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('floodgate:migrate:' || $1))")
        .bind(schema.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
    if let Some(schema) = schema {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(&mut *tx)
        .await?;
    }
    let table = names.render("{t}migrations");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (version bigint PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut *tx)
            .await?;
    let record = format!("INSERT INTO {table} (version, name) VALUES ($1, $2)");
    for m in migrate::pending(&applied, migrate::POSTGRES)? {
        let run = async {
            sqlx::raw_sql(sqlx::AssertSqlSafe(m.render(names)))
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(record.as_str()))
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
            Ok(())
        };
        m.apply("PostgreSQL", run).await?;
    }
    tx.commit().await?;
    Ok(())
}
