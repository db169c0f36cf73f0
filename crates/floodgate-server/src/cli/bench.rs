//! `floodgate bench`: enqueue N no-op jobs (in transactions of 10,000), drain them through the
//! worker runtime, and print jobs per second; then, with the worker idle, enqueue 200 jobs one
//! at a time 5 ms apart and print their enqueue-to-start latency (p50, p99) — the worker
//! figures of `BENCHMARKS.md`, reproducible with the binary alone.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floodgate_queue::worker::{Outcome, Worker};
use floodgate_queue::{AnyStore, Job, NewJob, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// `floodgate bench`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A SQLite file or postgres:// URL [default: a temporary SQLite file]; the benchmark's
    /// jobs go to the queue `floodgate-bench`.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Jobs to enqueue and drain.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub jobs: u64,
    /// The worker's global limit (jobs running at once).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const QUEUE: &str = "floodgate-bench";
const LATENCY_JOBS: u64 = 200;

/// Waits until the worker has finished `total` jobs, moving `bar` along.
async fn wait_for(
    worker: &floodgate_queue::worker::WorkerHandle,
    total: u64,
    bar: Option<&ProgressBar>,
) {
    loop {
        let done = worker.stats().succeeded;
        if let Some(bar) = bar {
            bar.set_position(done);
        }
        if done >= total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub(super) fn run(args: &BenchArgs) -> ExitCode {
    super::run_to_exit(true, bench(args))
}

async fn bench(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("floodgate-bench-{}", std::process::id()));
    let target = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&dir)?;
            dir.join("bench.db").to_string_lossy().into_owned()
        }
    };
    let store = AnyStore::open(&target).await?;
    let result = measure(&store, args).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (rate, p50, p99, elapsed) = result?;
    if args.json {
        println!(
            "{}",
            json!({
                "backend": store.backend(), "jobs": args.jobs, "concurrency": args.concurrency,
                "seconds": elapsed.as_secs_f64(), "jobs_per_second": rate,
                "start_latency_ms": {"p50": p50, "p99": p99},
            })
        );
    } else {
        let mut table = comfy_table::Table::new();
        table.set_header([
            "backend",
            "jobs",
            "concurrency",
            "jobs/s",
            "start p50",
            "start p99",
        ]);
        table.add_row([
            store.backend().to_owned(),
            args.jobs.to_string(),
            args.concurrency.to_string(),
            format!("{rate:.0}"),
            format!("{p50:.2} ms"),
            format!("{p99:.2} ms"),
        ]);
        println!("{table}");
    }
    Ok(())
}

/// Enqueues, drains, and returns jobs/s, start latency p50 and p99 (ms), and the drain time.
async fn measure(
    store: &AnyStore,
    args: &BenchArgs,
) -> Result<(f64, f64, f64, Duration), Box<dyn std::error::Error>> {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.jobs as usize)));
    let worker = Worker::builder(store.clone())
        .queues([QUEUE])
        .concurrency(args.concurrency as usize)
        .handle("noop", {
            let latencies = latencies.clone();
            move |job: Job, _| {
                let waited = job.payload["at"].as_i64().map(|at| micros_now() - at);
                if let Some(us) = waited {
                    latencies.lock().unwrap_or_else(|p| p.into_inner()).push(us);
                }
                async { Ok(Outcome::done()) }
            }
        })
        .build()?
        .start();
    worker.ready().await;
    let bar = ProgressBar::new(args.jobs).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} jobs  {per_sec}  {elapsed}",
    )?);
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(10_000);
        let at = micros_now();
        let jobs = (0..n)
            .map(|_| NewJob::new("noop", json!({ "at": at })).queue(QUEUE))
            .collect();
        store.enqueue_many(jobs).await?;
        left -= n;
    }
    wait_for(&worker, args.jobs, Some(&bar)).await;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    // Latency: an idle worker, one job at a time.
    latencies.lock().unwrap_or_else(|p| p.into_inner()).clear();
    for _ in 0..LATENCY_JOBS {
        let job = NewJob::new("noop", json!({ "at": micros_now() })).queue(QUEUE);
        store.enqueue(job).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_for(&worker, args.jobs + LATENCY_JOBS, None).await;
    worker.shutdown(Duration::from_secs(10)).await;
    let mut all = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    all.sort_unstable();
    let pick = |p: f64| {
        all.get(((p * all.len() as f64).ceil() as usize).max(1) - 1)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    Ok((
        args.jobs as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
        elapsed,
    ))
}
