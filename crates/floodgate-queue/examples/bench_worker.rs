//! End-to-end worker benchmarks, measured the way the PostgreSQL job-queue peers are measured.
//!
//! ```sh
//! cargo run --release -p floodgate-queue --all-features --example bench_worker -- \
//!     --backend postgres|sqlite [--database-url URL] [--jobs 20000] [--concurrency 10] \
//!     [--processes 1] [--latency]
//! ```
//!
//! * throughput: the worker processes start first and go idle; then `--jobs` no-op jobs are
//!   inserted in ONE transaction; the clock runs from that commit until the database shows
//!   no job left pending or running (counted every 20 ms; start-up excluded). Global limit `--concurrency`, the worker's
//!   default settings otherwise.
//! * `--latency`: one idle worker; 500 jobs enqueued one at a time 5 ms apart, each carrying
//!   its enqueue time; the handler records start minus enqueue; nearest-rank p50 and p99.
//!
//! PostgreSQL runs in schema `floodgate_bench_worker`, SQLite in a temporary file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floodgate_queue::worker::{KindOptions, Outcome, Worker};
use floodgate_queue::{JobState, ListJobs, NewJob, OutboxStore, PgStore, SqliteStore, Store};
use serde_json::json;

const SCHEMA: &str = "floodgate_bench_worker";

/// End-to-end worker benchmarks (see the file's header for the method).
#[derive(Clone, Debug, clap::Parser)]
#[command(about = "End-to-end worker benchmarks: throughput and enqueue-to-start latency")]
struct Args {
    /// The backend to measure.
    #[arg(long, value_parser = ["postgres", "sqlite"], default_value = "postgres")]
    backend: String,
    /// PostgreSQL URL (the benchmark uses its own schema).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    url: String,
    /// No-op jobs inserted in one transaction for the throughput run.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// The worker's global limit (jobs running at once per process).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    processes: u64,
    /// The worker's claim batch (default: the worker's own default, 100).
    #[arg(long = "claim-batch")]
    claim_batch: Option<u32>,
    /// The worker's claim-ahead cap (default: the worker's own default, the claim batch;
    /// 0 turns claiming ahead off).
    #[arg(long = "claim-ahead")]
    claim_ahead: Option<u32>,
    /// Measure enqueue-to-start latency instead: one idle worker, 500 jobs 5 ms apart.
    #[arg(long)]
    latency: bool,
    /// Internal: run as a worker process of the benchmark.
    #[arg(long, hide = true)]
    child: bool,
    /// Internal: the SQLite file of a child process.
    #[arg(long, hide = true, default_value = "")]
    path: String,
}

/// Jobs the latency run enqueues.
const LATENCY_JOBS: usize = 500;

fn args() -> Args {
    <Args as clap::Parser>::parse()
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A worker process: no-op handler (recording its start latency), default settings.
async fn child<S: Store + Clone>(store: S, args: &Args) {
    let mut builder = Worker::builder(store).concurrency(args.concurrency as usize);
    if let Some(n) = args.claim_batch {
        builder = builder.claim_batch(n);
    }
    if let Some(n) = args.claim_ahead {
        builder = builder.claim_ahead(n);
    }
    let handle = builder
        .handler("noop", KindOptions::new(), |job, _| async move {
            let started = micros_now();
            let result = job.payload["enqueued_us"]
                .as_i64()
                .map(|at| json!({ "latency_us": started - at }));
            Ok(result.map_or_else(Outcome::done, Outcome::with_result))
        })
        .build()
        .expect("worker")
        .start();
    println!("ready");
    // Run until the parent kills us.
    std::future::pending::<()>().await;
    drop(handle);
}

async fn open_sqlite(path: &str) -> SqliteStore {
    SqliteStore::open(path).await.expect("open SQLite")
}

async fn open_pg(url: &str) -> PgStore {
    PgStore::builder(url)
        .expect("URL")
        .schema(SCHEMA)
        .connect()
        .await
        .expect("connect")
}

fn spawn_children(args: &Args, n: usize) -> Vec<Child> {
    let mut children = Vec::new();
    for _ in 0..n {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--child",
                "--backend",
                &args.backend,
                "--database-url",
                &args.url,
                "--path",
                &args.path,
                "--concurrency",
                &args.concurrency.to_string(),
            ])
            .args(args.claim_batch.map(|n| format!("--claim-batch={n}")))
            .args(args.claim_ahead.map(|n| format!("--claim-ahead={n}")))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a worker process");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        children.push(child);
    }
    children
}

async fn throughput<S: OutboxStore + Clone>(store: &S, args: &Args) -> f64 {
    let mut children = spawn_children(args, args.processes as usize);
    tokio::time::sleep(Duration::from_millis(500)).await; // idle
    let jobs: Vec<NewJob> = (0..args.jobs)
        .map(|n| NewJob::new("noop", json!({ "n": n })))
        .collect();
    let mut tx = store.begin().await.unwrap();
    store.enqueue_many_in(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    let start = Instant::now();
    // Done when no job is left pending or running. Each look counts the jobs left in one
    // state (an index range that shrinks as the run goes, like the peers' count of the rows
    // left), every 20 ms, so the measuring competes little with the workers for the database
    // (at most 20 ms of error).
    for state in [JobState::Pending, JobState::Running] {
        let left = ListJobs {
            state: Some(state),
            ..ListJobs::default()
        };
        while store.count(&left).await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let rate = args.jobs as f64 / start.elapsed().as_secs_f64();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    rate
}

async fn latency<S: Store + Clone>(store: &S, args: &Args) -> (f64, f64) {
    let mut children = spawn_children(args, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    for _ in 0..LATENCY_JOBS {
        let job = NewJob::new("noop", json!({ "enqueued_us": micros_now() }));
        ids.push(store.enqueue(job).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::new();
    for id in ids {
        loop {
            let job = store.job(id).await.unwrap().unwrap();
            if job.state == JobState::Succeeded {
                latencies.push(job.result.unwrap()["latency_us"].as_i64().unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    latencies.sort_unstable();
    let rank = |p: f64| {
        latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1] as f64 / 1000.0
    };
    (rank(0.50), rank(0.99))
}

async fn reset_pg(url: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"
    )))
    .execute(&mut admin)
    .await
    .expect("drop schema");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = args();
    if args.child {
        match args.backend.as_str() {
            "sqlite" => child(open_sqlite(&args.path).await, &args).await,
            _ => child(open_pg(&args.url).await, &args).await,
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("floodgate-bench-worker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    args.path = dir.join("bench.db").to_str().unwrap().to_owned();
    if args.latency {
        println!(
            "{} latency: {LATENCY_JOBS} jobs enqueued one at a time 5 ms apart, one worker \
             process, concurrency {}",
            args.backend, args.concurrency
        );
    } else {
        println!(
            "{} throughput: {} jobs, concurrency {}, {} process(es)",
            args.backend, args.jobs, args.concurrency, args.processes
        );
    }
    match args.backend.as_str() {
        "sqlite" => {
            let store = open_sqlite(&args.path).await;
            if args.latency {
                let (p50, p99) = latency(&store, &args).await;
                println!("enqueue-to-start p50 {p50:.2} ms, p99 {p99:.2} ms");
            } else {
                println!("{:.0} jobs/s", throughput(&store, &args).await);
            }
        }
        "postgres" => {
            reset_pg(&args.url).await;
            let store = open_pg(&args.url).await;
            if args.latency {
                let (p50, p99) = latency(&store, &args).await;
                println!("enqueue-to-start p50 {p50:.2} ms, p99 {p99:.2} ms");
            } else {
                println!("{:.0} jobs/s", throughput(&store, &args).await);
            }
            store.close().await;
            reset_pg(&args.url).await;
        }
        other => unreachable!("clap allows only postgres or sqlite, not {other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}
