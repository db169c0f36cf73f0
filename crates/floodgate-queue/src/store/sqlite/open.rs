//! Opening a SQLite file: checks made before SQLite is asked, and SQLite's own refusals turned
//! into errors that name the file and say what to do.

use std::path::Path;

use crate::error::StoreError;

/// Refuses paths SQLite would fail on with an unhelpful code: a directory, or a file in a
/// directory that does not exist.
pub(super) fn check_path(path: &Path) -> Result<(), StoreError> {
    let fail = |reason: String| {
        Err(StoreError::Open {
            target: path.display().to_string(),
            reason,
        })
    };
    if path.as_os_str().is_empty() {
        return fail("the path is empty; name a file such as ./floodgate.db".to_owned());
    }
    if path.is_dir() {
        return fail(format!(
            "it is a directory; name a file inside it, such as {}",
            path.join("floodgate.db").display()
        ));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()),
    };
    if !parent.is_dir() {
        return fail(format!(
            "the directory {} does not exist; create it (mkdir -p {}) or choose another path",
            parent.display(),
            parent.display()
        ));
    }
    Ok(())
}

/// What SQLite's refusal to open or migrate `path` means, in words.
pub(super) fn open_error(path: &Path, error: StoreError) -> StoreError {
    let code = match &error {
        StoreError::Database(sqlx::Error::Database(e))
        | StoreError::Migration {
            source: sqlx::Error::Database(e),
            ..
        } => e.code().map(|c| c.into_owned()),
        _ => None,
    };
    // Primary result codes (the low byte of an extended code): SQLITE_NOTADB = 26,
    // SQLITE_CANTOPEN = 14, SQLITE_READONLY = 8, SQLITE_PERM = 3, SQLITE_CORRUPT = 11.
    let primary = code
        .as_deref()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    let reason = match primary {
        Some(26) => "the file exists but is not a SQLite database; choose another file (or \
                     move this one away)"
            .to_owned(),
        Some(11) => "the database file is corrupt; restore it from a backup or choose another \
                     file"
            .to_owned(),
        Some(14) | Some(3) => "SQLite cannot open or create the file; check that this user may \
                               read and write it and its directory"
            .to_owned(),
        Some(8) => "the file is read-only; the job store needs to write to it and to its \
                    directory (for the -wal and -shm files)"
            .to_owned(),
        _ => return error,
    };
    StoreError::Open {
        target: path.display().to_string(),
        reason,
    }
}
