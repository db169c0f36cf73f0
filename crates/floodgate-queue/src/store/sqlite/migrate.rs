//! Running the SQLite migrations: all pending ones in one `BEGIN IMMEDIATE` transaction, so
//! two processes opening a new file at once migrate it once.

use sqlx::Sqlite;
use sqlx::sqlite::SqlitePool;

use super::rows::now_micros;
use crate::error::StoreError;
use crate::store::migrate::{self, Names};

/// Brings the schema up to date.
pub(super) async fn run(pool: &SqlitePool, names: &Names) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let ledger = migrate::Ledger {
        create: "CREATE TABLE IF NOT EXISTS {t}migrations (version INTEGER PRIMARY KEY, \
                 name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        record: "INSERT INTO {t}migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
        now: Some(now_micros()),
    };
    migrate::apply_pending::<Sqlite>(&mut tx, names, migrate::SQLITE, ledger, "SQLite").await?;
    tx.commit().await?;
    Ok(())
}
