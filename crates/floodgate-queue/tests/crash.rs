//! Crash safety: the worker runs as a child process and is killed with SIGKILL mid-batch,
//! again and again, while 5,000 jobs write to a ledger through the inbox; after a final clean
//! run every job has succeeded and the ledger holds each job exactly once.
//!
//! The test re-executes its own binary as the child (`child_process` below does the work
//! only when `FLOODGATE_CRASH_CHILD` is set). The ledger has no unique key on purpose: an
//! effect applied twice shows up as a second row instead of being masked by a conflict.

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
    ($store:expr, $insert:expr) => {{
        let store = $store;
        let inbox = std::sync::Arc::new(Inbox::new(store.clone()));
        let insert: &'static str = $insert;
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
                        let tx = store.begin().await.map_err(JobError::retry)?;
                        let id = job.id.0;
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
        ($store:expr, $insert:expr) => {{
            let store = $store;
            let (worker, maintenance) = child_worker!(store.clone(), $insert);
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
            "INSERT INTO ledger (job_id) VALUES (?1)"
        ),
        #[cfg(feature = "postgres")]
        "postgres" => {
            let insert: &'static str = Box::leak(
                format!("INSERT INTO \"{schema}\".ledger (job_id) VALUES ($1)").into_boxed_str(),
            );
            run!(
                floodgate_queue::PgStore::builder(&db)
                    .unwrap()
                    .schema(schema.clone())
                    .connect()
                    .await
                    .unwrap(),
                insert
            )
        }
        other => panic!("unknown backend {other}"),
    }
}

/// `rescued`: jobs taken back from a killed child (their metadata records the rescue) — proof
/// that children died with jobs in flight.
async fn check<S: Store>(store: &S, ledger_counts: (i64, i64), rescued: i64) {
    assert!(rescued > 0, "some kill happened mid-job");
    assert_eq!(unfinished(store).await, 0);
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(
        stats[0].counts.succeeded, JOBS as u64,
        "every job succeeded"
    );
    let (rows, distinct) = ledger_counts;
    assert_eq!(distinct, JOBS as i64, "every job is in the ledger");
    assert_eq!(rows, JOBS as i64, "and only once");
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
    sqlx::query("CREATE TABLE ledger (job_id INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    store
        .enqueue_many((0..JOBS).map(|n| NewJob::new("ledger", json!(n))).collect())
        .await
        .unwrap();
    let p = path.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || crash_repeatedly("sqlite", &p, ""))
        .await
        .unwrap();
    let counts: (i64, i64) = sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM ledger")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let rescued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM floodgate_jobs WHERE json_extract(metadata, '$.rescues') >= 1",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!("sqlite: {rescued} jobs rescued from killed children");
    check(&store, counts, rescued).await;
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
    let ledger = format!("\"{}\".ledger", schema.name());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {ledger} (job_id bigint NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store
        .enqueue_many((0..JOBS).map(|n| NewJob::new("ledger", json!(n))).collect())
        .await
        .unwrap();
    let (url, name) = (schema.url().to_owned(), schema.name().to_owned());
    tokio::task::spawn_blocking(move || crash_repeatedly("postgres", &url, &name))
        .await
        .unwrap();
    let counts: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT job_id) FROM {ledger}"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let rescued: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".floodgate_jobs WHERE (metadata->>'rescues')::int >= 1",
        schema.name()
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!("postgres: {rescued} jobs rescued from killed children");
    check(&store, counts, rescued).await;
    store.close().await;
}
