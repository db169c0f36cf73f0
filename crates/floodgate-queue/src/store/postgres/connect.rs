//! Reaching PostgreSQL: the URL checked before anything is sent, one direct connection that
//! fails fast with the real cause (refused, unknown host, bad password, missing database,
//! TLS), and errors that name the server without its password.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::error::{StoreError, describe};

/// What a valid URL looks like, for error messages.
const SHAPE: &str = "postgres://user[:password]@host[:port]/database[?sslmode=require]";

/// Parses a PostgreSQL URL, refusing other schemes and malformed ones with a message that
/// shows the expected shape. The password never appears in an error.
pub(super) fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    let invalid = |why: String| StoreError::invalid("database_url", why);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(format!(
            "{:?} has no scheme; write it as {SHAPE}",
            redact(url)
        )));
    };
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(invalid(format!(
            "the scheme {scheme:?} is not PostgreSQL; write {SHAPE} (for SQLite, give a file \
             path instead)"
        )));
    }
    if rest.is_empty() || rest.starts_with('/') && !rest.contains("host=") {
        return Err(invalid(format!(
            "{:?} names no host; write {SHAPE}",
            redact(url)
        )));
    }
    url.parse().map_err(|e: sqlx::Error| {
        invalid(format!(
            "{:?} is not a valid PostgreSQL URL ({}); write {SHAPE}",
            redact(url),
            redact(&e.to_string())
        ))
    })
}

/// `url` with the password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    crate::redact_url(url)
}

/// The server and database `options` point at, for messages (never the password).
pub(super) fn target(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

/// Opens one connection and closes it: the pool then starts on a server known to answer, and
/// a failure says why at once instead of after the pool's acquire timeout.
pub(super) async fn probe(options: &PgConnectOptions, timeout: Duration) -> Result<(), StoreError> {
    let fail = |reason: String| StoreError::Open {
        target: target(options),
        reason,
    };
    match tokio::time::timeout(timeout, options.connect()).await {
        Err(_) => Err(fail(format!(
            "no answer within {timeout:?}; is the host reachable, and is PostgreSQL listening \
             on port {}?",
            options.get_port()
        ))),
        Ok(Err(e)) => Err(fail(reason(options, &e))),
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            Ok(())
        }
    }
}

fn reason(options: &PgConnectOptions, error: &sqlx::Error) -> String {
    let (host, port) = (options.get_host(), options.get_port());
    match error {
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "connection refused: nothing listens on {host}:{port}; start PostgreSQL or fix the \
             host and port"
        ),
        sqlx::Error::Io(e) => format!("cannot reach {host}:{port}: {e}"),
        sqlx::Error::Tls(e) => format!(
            "TLS failed: {e}; check sslmode (require, verify-ca, verify-full) and the server's \
             certificate"
        ),
        sqlx::Error::Database(e) => match e.code().as_deref() {
            Some("28P01") => format!(
                "password authentication failed for user {:?}; check the user and password",
                options.get_username()
            ),
            Some("28000") => format!(
                "the server refused user {:?}: {}; check the role and pg_hba.conf",
                options.get_username(),
                e.message()
            ),
            Some("3D000") => format!(
                "the database {:?} does not exist; create it (createdb {}) or fix the URL",
                options.get_database().unwrap_or_default(),
                options.get_database().unwrap_or_default()
            ),
            _ => describe(error),
        },
        other => describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        for (url, says) in [
            ("mysql://root@localhost/app", "not PostgreSQL"),
            ("localhost:5432", "no scheme"),
            ("postgres://", "names no host"),
        ] {
            let err = parse_url(url).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.contains("postgres://user"), "shows the shape: {err}");
        }
        assert!(parse_url("postgres://app@db:5432/jobs?sslmode=require").is_ok());
        assert!(parse_url("postgresql://app:secret@db/jobs").is_ok());
    }

    #[test]
    fn passwords_never_appear() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/jobs"),
            "postgres://app:***@db:5432/jobs"
        );
        let err = parse_url("mysql://app:s3cret@db/jobs")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let err = parse_url("postgres://app:s3cret@db:notaport/jobs")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
