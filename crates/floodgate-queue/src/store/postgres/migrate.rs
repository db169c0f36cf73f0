//! Running the PostgreSQL migrations: all pending ones in one transaction, under a
//! transaction-scoped advisory lock per schema, so many nodes may start at once (one
//! migrates, the others wait and then find it done).

use sqlx::Postgres;
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
    let ledger = migrate::Ledger {
        create: "CREATE TABLE IF NOT EXISTS {t}migrations (version bigint PRIMARY KEY, \
                 name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        record: "INSERT INTO {t}migrations (version, name) VALUES ($1, $2)",
        now: None,
    };
    migrate::apply_pending::<Postgres>(&mut tx, names, migrate::POSTGRES, ledger, "PostgreSQL")
        .await?;
    tx.commit().await?;
    Ok(())
}

/// After the migrations: records this store's payload limit for the SQL enqueue functions
/// (written only when it changes) and refuses functions older than this build's
/// ([`crate::sql::ENQUEUE_VERSION`]), replaced by hand or restored from an old dump.
pub(super) async fn check_functions(
    pool: &PgPool,
    names: &Names,
    max_payload_bytes: usize,
) -> Result<(), StoreError> {
    let limit = i64::try_from(max_payload_bytes).unwrap_or(i64::MAX);
    sqlx::query(sqlx::AssertSqlSafe(names.render(
        "UPDATE {t}settings SET value = $1 WHERE name = 'max_payload_bytes' AND value <> $1",
    )))
    .bind(limit)
    .execute(pool)
    .await?;
    let found: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(
        names.render("SELECT {t}enqueue_version()"),
    ))
    .fetch_one(pool)
    .await?;
    if found < crate::sql::ENQUEUE_VERSION {
        return Err(StoreError::Outdated {
            object: names.render("{t}enqueue"),
            found,
            expected: crate::sql::ENQUEUE_VERSION,
            ledger: names.render("{t}migrations"),
            migration: crate::sql::ENQUEUE_MIGRATION,
        });
    }
    Ok(())
}
