//! Embedded, numbered schema migrations, shared by the backends: each backend runs the list
//! for its dialect under its own lock (an advisory lock on PostgreSQL, a write transaction on
//! SQLite), skipping versions already recorded, with all pending migrations in one
//! transaction (they all apply, or none). A database migrated by a newer floodgate is
//! refused.

/// One migration: its number, a name, and its SQL with `{t}`, `{n}` and `{channel}` holes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    sql: &'static str,
}

impl Migration {
    /// The SQL with the table prefix, the bare name prefix and the channel filled in.
    pub(crate) fn render(&self, names: &Names) -> String {
        names.render(self.sql)
    }
}

/// What the `{…}` holes in SQL text stand for in one store.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// Table names' prefix, schema-qualified where the backend has schemas: `"app".floodgate_`.
    pub(crate) table: String,
    /// The bare prefix for index, constraint and trigger names: `floodgate_`.
    pub(crate) bare: String,
    /// The NOTIFY channel (PostgreSQL).
    pub(crate) channel: String,
}

impl Names {
    pub(crate) fn render(&self, sql: &str) -> String {
        sql.replace("{t}", &self.table)
            .replace("{n}", &self.bare)
            .replace("{channel}", &self.channel)
    }
}

#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("../../migrations/sqlite/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "inbox_and_leaders",
        sql: include_str!("../../migrations/sqlite/0002_inbox_and_leaders.sql"),
    },
    Migration {
        version: 3,
        name: "ordering_position",
        sql: include_str!("../../migrations/sqlite/0003_ordering_position.sql"),
    },
    Migration {
        version: 4,
        name: "groups_and_starts",
        sql: include_str!("../../migrations/sqlite/0004_groups_and_starts.sql"),
    },
];

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("../../migrations/postgres/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "inbox_and_leaders",
        sql: include_str!("../../migrations/postgres/0002_inbox_and_leaders.sql"),
    },
    Migration {
        version: 3,
        name: "ordering_position",
        sql: include_str!("../../migrations/postgres/0003_ordering_position.sql"),
    },
    Migration {
        version: 4,
        name: "groups_and_starts",
        sql: include_str!("../../migrations/postgres/0004_groups_and_starts.sql"),
    },
    Migration {
        version: 5,
        name: "enqueue_function",
        sql: include_str!("../../migrations/postgres/0005_enqueue_function.sql"),
    },
];

/// How a backend records applied migrations, as SQL with the `{t}` hole.
pub(crate) struct Ledger {
    /// `CREATE TABLE IF NOT EXISTS {t}migrations (…)` in the backend's dialect.
    pub(crate) create: &'static str,
    /// The insert of one applied migration: its version, its name, then `now` if given.
    pub(crate) record: &'static str,
    /// The time to record, for a backend whose statements are given the clock.
    pub(crate) now: Option<i64>,
}

/// Runs, on `conn` (inside the backend's migration transaction and lock), the migrations of
/// `known` not yet recorded in the `ledger`, after refusing a database a newer floodgate
/// migrated: each one's SQL and the row recording it, in order. A failure names the
/// migration; a success is logged, with `dialect` naming the backend.
pub(crate) async fn apply_pending<DB>(
    conn: &mut DB::Connection,
    names: &Names,
    known: &[Migration],
    ledger: Ledger,
    dialect: &str,
) -> Result<(), crate::StoreError>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query(sqlx::AssertSqlSafe(names.render(ledger.create)))
        .execute(&mut *conn)
        .await?;
    let select = names.render("SELECT version FROM {t}migrations");
    let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
        .fetch_all(&mut *conn)
        .await?;
    check_not_newer(&applied, known)?;
    let record = names.render(ledger.record);
    for m in known.iter().filter(|m| !applied.contains(&m.version)) {
        let run = async {
            sqlx::raw_sql(sqlx::AssertSqlSafe(m.render(names)))
                .execute(&mut *conn)
                .await?;
            let insert = sqlx::query(sqlx::AssertSqlSafe(record.as_str()))
                .bind(m.version)
                .bind(m.name.to_owned());
            match ledger.now {
                Some(now) => insert.bind(now),
                None => insert,
            }
            .execute(&mut *conn)
            .await?;
            Ok::<_, sqlx::Error>(())
        };
        run.await.map_err(|source| crate::StoreError::Migration {
            version: m.version,
            name: m.name,
            source,
        })?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied {dialect} migration"
        );
    }
    Ok(())
}

/// Refuses a database migrated by a newer floodgate: its tables may hold what this version
/// cannot read or would write wrongly.
fn check_not_newer(applied: &[i64], known: &[Migration]) -> Result<(), crate::StoreError> {
    let newest = known.iter().map(|m| m.version).max().unwrap_or(0);
    match applied.iter().copied().max() {
        Some(v) if v > newest => Err(crate::StoreError::Corrupt(format!(
            "the job store's schema is at version {v}, written by a newer floodgate; this \
             version knows migrations up to {newest}: upgrade floodgate, or point it at \
             another database"
        ))),
        _ => Ok(()),
    }
}

/// Checks a schema name or prefix: letters, digits and `_`, starting with a letter or `_`, at
/// most `max` bytes (so derived names stay within PostgreSQL's 63).
pub(crate) fn validate_identifier(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), crate::StoreError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(crate::StoreError::invalid(
            field,
            format!(
                "{value:?} must be 1 to {max} ASCII letters, digits or underscores, not \
                 starting with a digit"
            ),
        ))
    }
}
