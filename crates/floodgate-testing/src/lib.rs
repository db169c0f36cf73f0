//! Test support for the floodgate workspace.
//!
//! * [`postgres_schema`] gives a test its own PostgreSQL schema on the server at
//!   `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), with a pool whose
//!   connections use it as their `search_path`, and drops it again when the handle is dropped
//!   (also when the test panics). Tests therefore run in parallel and leave nothing behind.
//! * [`redis_url`] says where Redis is, after checking that it answers.
//!
//! When a service can't be reached, the helpers print why and return `None` so the test can
//! skip itself — unless `FLOODGATE_REQUIRE_SERVICES=1`, in which case they panic, so CI fails
//! instead of silently skipping.
//!
//! ```no_run
//! # async fn example() {
//! let Some(db) = floodgate_testing::postgres_schema("claims").await else { return };
//! sqlx::query("CREATE TABLE t (id int)").execute(db.pool()).await.unwrap();
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

pub use sqlx;

/// The PostgreSQL server tests use unless `DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Redis server tests use unless `REDIS_URL` says otherwise.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Whether missing services must fail tests (`FLOODGATE_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("FLOODGATE_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports an unreachable service: panics when services are required, else prints a skip
/// notice and returns `None`.
pub fn unavailable<T>(service: &str, url: &str, why: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!(
            "{service} at {url} is required (FLOODGATE_REQUIRE_SERVICES=1) but unavailable: {why}"
        );
    }
    eprintln!(
        "skipped: {service} at {url} is unavailable ({why}); set FLOODGATE_REQUIRE_SERVICES=1 to fail instead"
    );
    None
}

/// The PostgreSQL URL tests use.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A schema of one test's own; dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    name: String,
    url: String,
    pool: PgPool,
}

impl PgSchema {
    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool whose connections have `search_path` set to the schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The server URL (without the schema).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connect options for more pools or connections inside the schema.
    pub fn connect_options(&self) -> PgConnectOptions {
        schema_options(&self.url, &self.name).expect("URL parsed before")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside or outside a runtime, and during a panic: do the clean-up on a
        // thread of its own with a runtime of its own.
        // The pool is left alone: its connections belong to the test's runtime, which is
        // blocked here. Idle connections hold no locks; `lock_timeout` bounds the wait if a
        // leaked transaction does.
        let url = self.url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for schema clean-up");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    );
                    if let Err(e) = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(drop))).await {
                        eprintln!("could not drop test schema {name}: {e}");
                    }
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn schema_options(url: &str, schema: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options.options([("search_path", schema)]))
}

/// Creates a fresh schema named after `label` for one test, or `None` (after printing why)
/// when PostgreSQL is unreachable and services are not required.
///
/// # Panics
///
/// When PostgreSQL is unreachable and `FLOODGATE_REQUIRE_SERVICES=1`.
pub async fn postgres_schema(label: &str) -> Option<PgSchema> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let url = database_url();
    let admin = async {
        let options: PgConnectOptions = url.parse()?;
        tokio::time::timeout(Duration::from_secs(5), options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    };
    let mut admin = match admin.await {
        Ok(conn) => conn,
        Err(e) => return unavailable("PostgreSQL", &url, e),
    };
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "fgtest_{label}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; CREATE SCHEMA \"{name}\""
        ))))
        .await
        .unwrap_or_else(|e| panic!("creating test schema {name}: {e}"));
    let _ = admin.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(schema_options(&url, &name).expect("URL parsed above"));
    Some(PgSchema { name, url, pool })
}

/// The Redis URL tests use, if Redis answers a `PING`; else `None` after printing why.
///
/// # Panics
///
/// When Redis is unreachable and `FLOODGATE_REQUIRE_SERVICES=1`.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    match ping_redis(&url).await {
        Ok(()) => Some(url),
        Err(e) => unavailable("Redis", &url, e),
    }
}

/// Sends a RESP `PING` to the host and port of a `redis://` URL and expects `+PONG`; the
/// error says what failed (not a `redis://` URL, no connection, another answer).
pub async fn ping_redis(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("not a redis:// URL: {url}"))?;
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    };
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        match &buf[..n] {
            b"+PONG\r\n" => Ok(()),
            other => Err(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(other)
            )),
        }
    };
    tokio::time::timeout(Duration::from_secs(3), talk)
        .await
        .map_err(|_| "no answer within 3 s".to_owned())?
}
