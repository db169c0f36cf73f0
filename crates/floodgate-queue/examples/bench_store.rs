//! Job-store benchmarks on SQLite and PostgreSQL, printed as Markdown tables.
//!
//! ```sh
//! cargo run --release -p floodgate-queue --all-features --example bench_store -- \
//!     [--backend sqlite|postgres|both] [--database-url postgres://…] [--skip-pinned]
//!     [--pinned-only] [--no-claim-cursor] [--sqlite-writers N] [--quick]
//! ```
//!
//! * batch enqueue: `enqueue_many` of 10,000 jobs, repeated;
//! * single enqueue: one job per call, from 1 and from 4 concurrent callers;
//! * claim + complete: C concurrent claimers (1, 2, 4, 8) each looping `claim(limit B)` and
//!   completing what they got (`complete` for B = 1, `complete_many` for B = 100) until the
//!   queue is empty; jobs/s from the first claim to the last completion;
//! * the same with 500,000 succeeded jobs sitting in the table;
//! * PostgreSQL only, the MVCC horizon: 4 claimers with B = 100 drain a large backlog while,
//!   from second 10 to second 40, another connection holds a `REPEATABLE READ` transaction
//!   open (so vacuum can remove nothing); per-second throughput before, during and after.
//!
//! PostgreSQL runs in schema `floodgate_bench` (dropped before and after).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use floodgate_queue::{Claim, Completion, NewJob, PgStore, SqliteStore, Store};
use serde_json::json;
use sqlx::Connection;

const SCHEMA: &str = "floodgate_bench";

/// Job-store benchmarks (see the file's header for what each measures).
#[derive(Debug, clap::Parser)]
#[command(about = "Job-store benchmarks on SQLite and PostgreSQL, printed as Markdown tables")]
struct Cli {
    /// Which backend(s) to measure.
    #[arg(long, value_parser = ["sqlite", "postgres", "both"], default_value = "both")]
    backend: String,
    /// PostgreSQL URL (the benchmark uses its own schema).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    url: String,
    /// Skip the run with a pinned MVCC horizon.
    #[arg(long)]
    skip_pinned: bool,
    /// Run only the pinned-horizon measurement (PostgreSQL).
    #[arg(long)]
    pinned_only: bool,
    /// Claims always read the queue from its start (PostgreSQL).
    #[arg(long)]
    no_claim_cursor: bool,
    /// SQLite write connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    sqlite_writers: u32,
    /// Fewer repetitions, smaller tables.
    #[arg(long)]
    quick: bool,
}

struct Args {
    sqlite: bool,
    postgres: bool,
    url: String,
    pinned: bool,
    pinned_only: bool,
    cursor: bool,
    sqlite_writers: u32,
    quick: bool,
}

fn args() -> Args {
    let cli = <Cli as clap::Parser>::parse();
    Args {
        sqlite: cli.backend != "postgres" && !cli.pinned_only,
        postgres: cli.backend != "sqlite",
        url: cli.url,
        pinned: !cli.skip_pinned,
        pinned_only: cli.pinned_only,
        cursor: !cli.no_claim_cursor,
        sqlite_writers: cli.sqlite_writers,
        quick: cli.quick,
    }
}

/// What differs between backends: resetting and seeding tables with raw SQL.
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Backend::Sqlite(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(drop),
            Backend::Postgres(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(drop),
        }
        .expect("benchmark SQL");
    }

    fn table(&self) -> String {
        match self {
            Backend::Sqlite(_) => "floodgate_jobs".to_owned(),
            Backend::Postgres(_) => format!("{SCHEMA}.floodgate_jobs"),
        }
    }

    /// Empties the table and puts `finished` succeeded jobs in it.
    async fn reset(&self, finished: u64) {
        let t = self.table();
        match self {
            Backend::Sqlite(_) => {
                self.exec(&format!("DELETE FROM {t}")).await;
                self.exec(&format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {finished})
                     INSERT INTO {t} (queue, kind, payload, priority, run_at, state, attempt,
                         max_attempts, created_at, updated_at, finished_at)
                     SELECT 'default', 'noop', '{{}}', 5, 0, 'succeeded', 1, 25, 0, 0, 0
                     FROM n WHERE {finished} > 0"
                ))
                .await;
            }
            Backend::Postgres(_) => {
                self.exec(&format!("TRUNCATE {t}")).await;
                self.exec(&format!(
                    "INSERT INTO {t} (queue, kind, payload, priority, run_at, state, attempt,
                         max_attempts, finished_at)
                     SELECT 'default', 'noop', '{{}}', 5, now(), 'succeeded', 1, 25, now()
                     FROM generate_series(1, {finished})"
                ))
                .await;
                self.exec(&format!("VACUUM ANALYZE {t}")).await;
            }
        }
    }

    /// Removes what the last run added, keeping the seeded rows.
    async fn clear_run(&self, keep_below: i64) {
        let t = self.table();
        self.exec(&format!("DELETE FROM {t} WHERE id >= {keep_below}"))
            .await;
        if let Backend::Postgres(_) = self {
            self.exec(&format!("VACUUM ANALYZE {t}")).await;
        }
    }

    async fn max_id(&self) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT coalesce(max(id), 0) FROM {}", self.table()));
        match self {
            Backend::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
            Backend::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
        }
        .expect("max id")
    }
}

fn noop(n: u64) -> NewJob {
    NewJob::new("noop", json!({ "n": n }))
}

async fn fill<S: Store>(store: &S, jobs: u64) {
    let mut n = 0;
    while n < jobs {
        let batch = (jobs - n).min(10_000);
        store
            .enqueue_many((n..n + batch).map(noop).collect())
            .await
            .expect("fill");
        n += batch;
    }
}

async fn batch_enqueue<S: Store>(store: &S, batches: u64) -> f64 {
    let start = Instant::now();
    for b in 0..batches {
        store
            .enqueue_many((0..10_000).map(|i| noop(b * 10_000 + i)).collect())
            .await
            .expect("batch enqueue");
    }
    (batches * 10_000) as f64 / start.elapsed().as_secs_f64()
}

async fn single_enqueue<S: Store + Clone>(store: &S, callers: u64, each: u64) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    store.enqueue(noop(c * each + i)).await.expect("enqueue");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (callers * each) as f64 / start.elapsed().as_secs_f64()
}

/// Claimers loop claim + complete until the queue is empty; returns jobs/s.
async fn drain<S: Store + Clone>(
    store: &S,
    claimers: u32,
    batch: u32,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..claimers)
        .map(|w| {
            let store = store.clone();
            let counter = counter.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let claim = Claim::new(format!("bench-{w}"), batch);
                while !stop.load(Ordering::Relaxed) {
                    let jobs = store.claim(&claim).await.expect("claim");
                    if jobs.is_empty() {
                        return;
                    }
                    if batch == 1 {
                        for j in &jobs {
                            store
                                .complete(j.lease().unwrap(), None)
                                .await
                                .expect("complete");
                        }
                    } else {
                        let done = jobs
                            .iter()
                            .map(|j| Completion {
                                lease: j.lease().unwrap(),
                                result: None,
                            })
                            .collect();
                        let lost = store.complete_many(done).await.expect("complete_many");
                        assert!(lost.is_empty());
                    }
                    counter.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    counter.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn claim_matrix<S: Store + Clone>(backend: &Backend, store: &S, seeded: u64, quick: bool) {
    backend.reset(seeded).await;
    let keep_below = backend.max_id().await + 1;
    println!(
        "\n{} claim + complete, {seeded} finished jobs in the table (jobs/s):\n",
        backend.name()
    );
    println!("| claimers | batch 1 | batch 100 |\n|---:|---:|---:|");
    for claimers in [1, 2, 4, 8] {
        let mut row = format!("| {claimers} |");
        for batch in [1u32, 100] {
            let jobs = match (batch, quick) {
                (1, true) => 2_000,
                (1, false) => 10_000,
                (_, true) => 10_000,
                _ => 50_000,
            };
            fill(store, jobs).await;
            let counter = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let rate = drain(store, claimers, batch, counter.clone(), stop).await;
            assert_eq!(
                counter.load(Ordering::Relaxed),
                jobs,
                "every job drained once"
            );
            row.push_str(&format!(" {rate:.0} |"));
            backend.clear_run(keep_below).await;
        }
        println!("{row}");
    }
}

async fn enqueue_figures<S: Store + Clone>(backend: &Backend, store: &S, quick: bool) {
    backend.reset(0).await;
    let batches = if quick { 3 } else { 10 };
    let batch = batch_enqueue(store, batches).await;
    backend.reset(0).await;
    let each = if quick { 500 } else { 2_500 };
    let single1 = single_enqueue(store, 1, each * 2).await;
    backend.reset(0).await;
    let single4 = single_enqueue(store, 4, each).await;
    backend.reset(0).await;
    println!("\n{} enqueue (jobs/s):\n", backend.name());
    println!("| batch of 10,000 | single, 1 caller | single, 4 callers |\n|---:|---:|---:|");
    println!("| {batch:.0} | {single1:.0} | {single4:.0} |");
}

/// The pinned MVCC horizon: throughput per second while a REPEATABLE READ transaction is open.
async fn pinned_horizon(backend: &Backend, store: &PgStore, url: &str, quick: bool) {
    let (before, hold, after) = if quick { (5, 10, 10) } else { (10, 30, 15) };
    backend.reset(0).await;
    // More than 4 claimers can drain in the whole window at the unpinned rate.
    let backlog = if quick { 1_000_000 } else { 3_300_000 };
    backend
        .exec(&format!(
            "INSERT INTO {t} (queue, kind, payload, priority, run_at, state, max_attempts)
             SELECT 'default', 'noop', '{{}}', 5, now(), 'pending', 25
             FROM generate_series(1, {backlog})",
            t = backend.table()
        ))
        .await;
    backend
        .exec(&format!("VACUUM ANALYZE {}", backend.table()))
        .await;
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let store = store.clone();
        let counter = counter.clone();
        let stop = stop.clone();
        tokio::spawn(async move { drain(&store, 4, 100, counter, stop).await })
    };
    let holder = {
        let url = url.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(before)).await;
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("holder connects");
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
                .execute(&mut conn)
                .await
                .expect("open the snapshot");
            tokio::time::sleep(Duration::from_secs(hold)).await;
            sqlx::raw_sql("COMMIT")
                .execute(&mut conn)
                .await
                .expect("commit");
        })
    };
    let mut per_second = Vec::new();
    let mut last = 0;
    for _ in 0..before + hold + after {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counter.load(Ordering::Relaxed);
        per_second.push(now - last);
        last = now;
    }
    holder.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    drainer.await.unwrap();
    let (b, h, a) = (before as usize, hold as usize, after as usize);
    let avg = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
    let baseline = avg(&per_second[1..b]);
    let during = avg(&per_second[b..b + h]);
    let min_during = per_second[b..b + h].iter().copied().min().unwrap_or(0);
    let recovered = per_second[b + h..b + h + a]
        .iter()
        .position(|&s| s as f64 >= 0.9 * baseline)
        .map_or_else(
            || format!("not within {after} s"),
            |i| format!("{} s", i + 1),
        );
    println!(
        "\nPostgreSQL pinned MVCC horizon ({hold} s REPEATABLE READ hold, 4 claimers, batch 100):\n"
    );
    println!(
        "| before (jobs/s) | during, mean | during, worst second | during / before | back to 90% after the hold |"
    );
    println!("|---:|---:|---:|---:|---|");
    println!(
        "| {baseline:.0} | {during:.0} | {min_during} | {:.2}x | {recovered} |",
        during / baseline
    );
    println!("\nper second: {per_second:?}");
    backend.reset(0).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    if args.sqlite {
        let dir = tempfile_dir();
        let store = SqliteStore::builder(dir.join("bench.db"))
            .writers(args.sqlite_writers)
            .open()
            .await
            .expect("open SQLite");
        let backend = Backend::Sqlite(store.clone());
        enqueue_figures(&backend, &store, args.quick).await;
        claim_matrix(&backend, &store, 0, args.quick).await;
        claim_matrix(&backend, &store, 500_000, args.quick).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
    if args.postgres {
        {
            let mut admin = sqlx::PgConnection::connect(&args.url)
                .await
                .expect("connect PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"
            )))
            .execute(&mut admin)
            .await
            .expect("drop old bench schema");
        }
        let store = PgStore::builder(&args.url)
            .expect("URL")
            .schema(SCHEMA)
            .statement_timeout(None)
            .claim_rescan(args.cursor.then_some(Duration::from_secs(1)))
            .connect()
            .await
            .expect("connect PostgreSQL store");
        let backend = Backend::Postgres(store.clone());
        if !args.pinned_only {
            enqueue_figures(&backend, &store, args.quick).await;
            claim_matrix(&backend, &store, 0, args.quick).await;
            claim_matrix(&backend, &store, 500_000, args.quick).await;
        }
        if args.pinned {
            pinned_horizon(&backend, &store, &args.url, args.quick).await;
        }
        backend.exec(&format!("DROP SCHEMA {SCHEMA} CASCADE")).await;
        store.close().await;
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
