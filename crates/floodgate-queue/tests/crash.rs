//! Crash safety: the worker runs as a child process and is killed with SIGKILL mid-batch,
//! again and again, while 5,000 jobs write to a ledger through the inbox; after a final clean
//! run every job has succeeded and the ledger holds each job exactly once.
//!
//! The test re-executes its own binary as the child (`child_process` below does the work
//! only when `FLOODGATE_CRASH_CHILD` is set). Two tables, neither with a unique key, so that
//! nothing masks a repeat:
//! * `ledger`: the effect, written through the inbox in the job's transaction: exactly one row
//!   per job.
//! * `runs`: one row per start of a handler, written on its own before the inbox sees the job.
//!   A job runs again only after a killed child's lease on it was rescued, so no job has
//!   more runs than one plus the rescues the store recorded on it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use floodgate_queue::maintenance::Maintenance;
use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker};
use floodgate_queue::{Inbox, NewJob, OutboxStore, Singleton, Store};
use serde_json::json;

const JOBS: usize = 5_000;
const KILLS: usize = 10;

fn spawn_child(backend: &str, db: &str, schema: &str, until_done: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLOODGATE_CRASH_CHILD", backend)
        .env("FLOODGATE_CRASH_DB", db)
        .env("FLOODGATE_CRASH_SCHEMA", schema)
        .env(
            "FLOODGATE_CRASH_UNTIL_DONE",
            if until_done { "1" } else { "0" },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the child's output until its worker says it runs (or the child ends).
fn wait_until_ready(child: &mut Child) {
    use std::io::BufRead;
    let out = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(out).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.contains(READY) {
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
}

/// What a child prints once its worker runs.
const READY: &str = "floodgate-crash-child-ready";

/// Starts and SIGKILLs children at varied moments, then runs one to the end.
fn crash_repeatedly(backend: &str, db: &str, schema: &str) {
    for kill in 0..KILLS {
        let mut child = spawn_child(backend, db, schema, false);
        // The kill moment counts from the child's worker running, not from the spawn: on busy
        // cores a child can take longer than the delay to connect and start.
        wait_until_ready(&mut child);
        std::thread::sleep(Duration::from_millis(100 + 37 * (kill as u64 % 5)));
        child.kill().unwrap(); // SIGKILL: no destructor, no shutdown, leases left behind
        child.wait().unwrap();
    }
    let status = spawn_child(backend, db, schema, true).wait().unwrap();
    assert!(status.success(), "the final clean run finished");
}

/// The worker each child runs: jobs write `job_id` into the ledger through the inbox.
macro_rules! child_worker {
    ($store:expr, $insert:expr, $run:expr) => {{
        let store = $store;
        let inbox = std::sync::Arc::new(Inbox::new(store.clone()));
        let insert: &'static str = $insert;
        let run: &'static str = $run;
        let role = Singleton::lease(
            store.clone(),
            "maintenance",
            &format!("child-{}", std::process::id()),
            Duration::from_millis(600),
        );
        let maintenance = Maintenance::new(store.clone())
            .rescue_every(Duration::from_millis(100))
            .start(role);
        let worker = {
            let (store, inbox) = (store.clone(), inbox.clone());
            Worker::builder(store.clone())
                .id(format!("child-{}", std::process::id()))
                .concurrency(8)
                .lease_ttl(Duration::from_millis(600))
                .poll_interval(Duration::from_millis(50))
                .handler("ledger", KindOptions::new(), move |job, _| {
                    let (store, inbox) = (store.clone(), inbox.clone());
                    async move {
                        let id = job.id.0;
                        sqlx::query(run)
                            .bind(id)
                            .execute(store.pool())
                            .await
                            .map_err(JobError::retry)?;
                        let tx = store.begin().await.map_err(JobError::retry)?;
                        inbox
                            .process_once(tx, "ledger", &format!("job-{id}"), move |tx| {
                                Box::pin(async move {
                                    sqlx::query(insert).bind(id).execute(&mut **tx).await
                                })
                            })
                            .await
                            .map_err(JobError::retry)?;
                        Ok(Outcome::done())
                    }
                })
                .build()
                .unwrap()
                .start()
        };
        (worker, maintenance)
    }};
}

async fn unfinished<S: Store>(store: &S) -> u64 {
    let stats = store.queue_stats().await.unwrap();
    stats
        .iter()
        .map(|s| s.counts.pending + s.counts.running + s.counts.failed)
        .sum()
}

/// The child's entry point; does nothing unless the parent started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(backend) = std::env::var("FLOODGATE_CRASH_CHILD") else {
        return;
    };
    let db = std::env::var("FLOODGATE_CRASH_DB").unwrap();
    let schema = std::env::var("FLOODGATE_CRASH_SCHEMA").unwrap();
    let until_done = std::env::var("FLOODGATE_CRASH_UNTIL_DONE").unwrap() == "1";
    macro_rules! run {
        ($store:expr, $insert:expr, $run:expr) => {{
            let store = $store;
            let (worker, maintenance) = child_worker!(store.clone(), $insert, $run);
            println!("{READY}");
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if until_done && unfinished(&store).await == 0 {
                    break;
                }
            }
            worker.shutdown(Duration::from_secs(5)).await;
            maintenance.stop().await;
        }};
    }
    match backend.as_str() {
        #[cfg(feature = "sqlite")]
        "sqlite" => run!(
            floodgate_queue::SqliteStore::open(&db).await.unwrap(),
            "INSERT INTO ledger (job_id) VALUES (?1)",
            "INSERT INTO runs (job_id) VALUES (?1)"
        ),
        #[cfg(feature = "postgres")]
        "postgres" => {
            let insert: &'static str = Box::leak(
                format!("INSERT INTO \"{schema}\".ledger (job_id) VALUES ($1)").into_boxed_str(),
            );
            let runs: &'static str = Box::leak(
                format!("INSERT INTO \"{schema}\".runs (job_id) VALUES ($1)").into_boxed_str(),
            );
            run!(
                floodgate_queue::PgStore::builder(&db)
                    .unwrap()
                    .schema(schema.clone())
                    .connect()
                    .await
                    .unwrap(),
                insert,
                runs
            )
        }
        other => panic!("unknown backend {other}"),
    }
}

/// What the parent reads back after the children, each count straight from the tables.
#[derive(Debug)]
struct Tally {
    /// Ledger rows, and distinct jobs among them.
    ledger: (i64, i64),
    /// Handler starts, and distinct jobs among them.
    runs: (i64, i64),
    /// Rows in state `succeeded`, counted in SQL (not the store's own summary).
    succeeded: i64,
    /// Rescues the store recorded (the sum of every job's `metadata.rescues`): proof that
    /// children died with jobs in flight.
    rescues: i64,
    /// Jobs that ran more often than once plus their own rescues: a job runs again only after
    /// a killed child's lease on it was taken back.
    over_run: i64,
}

fn check(tally: &Tally) {
    eprintln!("{tally:?}");
    assert!(tally.rescues > 0, "some kill happened mid-job");
    assert_eq!(tally.succeeded, JOBS as i64, "every job succeeded");
    assert_eq!(tally.ledger.1, JOBS as i64, "every job is in the ledger");
    assert_eq!(tally.ledger.0, JOBS as i64, "and only once");
    assert_eq!(tally.runs.1, JOBS as i64, "every job ran");
    assert_eq!(
        tally.over_run, 0,
        "a job ran again only after a rescue of it"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_repeated_kill_9() {
    if std::env::var("FLOODGATE_CRASH_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let store = floodgate_queue::SqliteStore::open(&path).await.unwrap();
    for table in ["ledger", "runs"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (job_id INTEGER NOT NULL)"
        )))
        .execute(store.pool())
        .await
        .unwrap();
    }
    store
        .enqueue_many((0..JOBS).map(|n| NewJob::new("ledger", json!(n))).collect())
        .await
        .unwrap();
    let p = path.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || crash_repeatedly("sqlite", &p, ""))
        .await
        .unwrap();
    let pairs = |table: &str| {
        sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), count(DISTINCT job_id) FROM {table}"
        )))
        .fetch_one(store.pool())
    };
    let tally = Tally {
        ledger: pairs("ledger").await.unwrap(),
        runs: pairs("runs").await.unwrap(),
        succeeded: sqlx::query_scalar(
            "SELECT count(*) FROM floodgate_jobs WHERE state = 'succeeded'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap(),
        rescues: sqlx::query_scalar(
            "SELECT coalesce(sum(json_extract(metadata, '$.rescues')), 0) FROM floodgate_jobs",
        )
        .fetch_one(store.pool())
        .await
        .unwrap(),
        over_run: sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT job_id, count(*) AS n FROM runs GROUP BY job_id) AS r \
             JOIN floodgate_jobs AS j ON j.id = r.job_id \
             WHERE r.n > 1 + coalesce(json_extract(j.metadata, '$.rescues'), 0)",
        )
        .fetch_one(store.pool())
        .await
        .unwrap(),
    };
    check(&tally);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_repeated_kill_9() {
    if std::env::var("FLOODGATE_CRASH_CHILD").is_ok() {
        return;
    }
    let Some(schema) = floodgate_testing::postgres_schema("crash").await else {
        return;
    };
    let store = floodgate_queue::PgStore::builder_with(schema.connect_options())
        .schema(schema.name())
        .connect()
        .await
        .unwrap();
    let name = schema.name().to_owned();
    for table in ["ledger", "runs"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{name}\".{table} (job_id bigint NOT NULL)"
        )))
        .execute(store.pool())
        .await
        .unwrap();
    }
    store
        .enqueue_many((0..JOBS).map(|n| NewJob::new("ledger", json!(n))).collect())
        .await
        .unwrap();
    let (url, child_schema) = (schema.url().to_owned(), name.clone());
    tokio::task::spawn_blocking(move || crash_repeatedly("postgres", &url, &child_schema))
        .await
        .unwrap();
    let pairs = |table: &str| {
        sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), count(DISTINCT job_id) FROM \"{name}\".{table}"
        )))
        .fetch_one(store.pool())
    };
    let tally = Tally {
        ledger: pairs("ledger").await.unwrap(),
        runs: pairs("runs").await.unwrap(),
        succeeded: sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{name}\".floodgate_jobs WHERE state = 'succeeded'"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap(),
        rescues: sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(sum((metadata->>'rescues')::bigint), 0)::bigint \
             FROM \"{name}\".floodgate_jobs"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap(),
        over_run: sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM (SELECT job_id, count(*) AS n FROM \"{name}\".runs \
             GROUP BY job_id) AS r JOIN \"{name}\".floodgate_jobs AS j ON j.id = r.job_id \
             WHERE r.n > 1 + coalesce((j.metadata->>'rescues')::bigint, 0)"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap(),
    };
    check(&tally);
    store.close().await;
}
