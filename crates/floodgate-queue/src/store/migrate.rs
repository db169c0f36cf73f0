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

    /// Applies this migration with `apply` (its SQL, and the row recording it, inside the
    /// backend's migration transaction): a failure names the migration, a success is logged.
    /// `dialect` names the backend in the log.
    pub(crate) async fn apply(
        &self,
        dialect: &str,
        apply: impl std::future::Future<Output = Result<(), sqlx::Error>>,
    ) -> Result<(), crate::StoreError> {
        apply.await.map_err(|source| crate::StoreError::Migration {
            version: self.version,
            name: self.name,
            source,
        })?;
        tracing::info!(
            version = self.version,
            name = self.name,
            "applied {dialect} migration"
        );
        Ok(())
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
];

/// The migrations of `known` whose version is not in `applied`, in order, after refusing a
/// database a newer floodgate migrated.
pub(crate) fn pending<'k>(
    applied: &[i64],
    known: &'k [Migration],
) -> Result<Vec<&'k Migration>, crate::StoreError> {
    check_not_newer(applied, known)?;
    Ok(known
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
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
