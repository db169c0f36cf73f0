//! Load against `floodgate serve`: single-job enqueues from many keep-alive connections, batch
//! enqueues, and HTTP workers draining a backlog (claim + complete).
//!
//! ```sh
//! # an in-process server on a temporary SQLite file (synchronous = FULL, as `serve` runs it):
//! cargo run --release -p floodgate-server --example bench_http -- --mode single
//! cargo run --release -p floodgate-server --example bench_http -- --mode batch
//! cargo run --release -p floodgate-server --example bench_http -- --mode workers
//! cargo run --release -p floodgate-server --example bench_http -- --mode workers --batch-complete
//! # webhook deliveries to a local no-op target at 2 destinations (in-process server only):
//! cargo run --release -p floodgate-server --example bench_http -- --mode webhooks --jobs 20000
//! # GET /v1/queues over 1,000,000 finished and 100,000 pending jobs (in-process server only):
//! cargo run --release -p floodgate-server --example bench_http -- --mode queues
//! # on PostgreSQL (a fresh database is best: the tables are shared with `serve`):
//! cargo run --release -p floodgate-server --example bench_http -- --database-url postgres://...
//! # or against a running server:
//! cargo run --release -p floodgate-server --example bench_http -- --server http://127.0.0.1:7070
//! ```
//!
//! Client and server share the machine's cores, as a load tool on the same host would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

/// Load against `floodgate serve`.
#[derive(Debug, Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_parser = ["single", "batch", "workers", "queues", "webhooks", "dashboard"], default_value = "single")]
    mode: String,
    /// A running server; without it, one is started in this process.
    #[arg(long)]
    server: Option<String>,
    /// For the in-process server: a SQLite path (default: a temporary file) or postgres:// URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Jobs to enqueue (or drain).
    #[arg(long, default_value_t = 50_000)]
    jobs: u64,
    /// Concurrent keep-alive connections (single: 64; batch: 4; workers: 4).
    #[arg(long)]
    connections: Option<usize>,
    /// workers: dashboards (event streams) open while the workers drain.
    #[arg(long, default_value_t = 0)]
    dashboards: usize,
    /// workers: report each claim's jobs with one `POST /v1/jobs/complete` instead of one
    /// request per job.
    #[arg(long)]
    batch_complete: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile_dir();
    let (base, _server) = match &args.server {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let mut webhooks = floodgate_server::webhook::config::WebhookConfig {
                secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()],
                max_concurrency: 64,
                ..Default::default()
            };
            for name in ["a", "b"] {
                webhooks.destinations.insert(
                    name.to_owned(),
                    floodgate_server::webhook::config::Destination {
                        allow_private: Some(true),
                        ..Default::default()
                    },
                );
            }
            let config = floodgate_server::config::Config {
                webhooks,
                database_url: args
                    .database_url
                    .clone()
                    .unwrap_or_else(|| dir.join("bench.db").to_string_lossy().into_owned()),
                max_concurrent_requests: 4_096,
                // The dashboard mode times the counts too: no sample reused.
                queue_stats_max_age: if args.mode == "dashboard" {
                    Duration::ZERO
                } else {
                    floodgate_server::config::Config::default().queue_stats_max_age
                },
                ..Default::default()
            };
            let server = floodgate_server::server::Server::builder(config)
                .listener(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
                .node("bench")
                // The webhooks mode times delivery from the start of the worker.
                .without_delivery()
                .start()
                .await?;
            let state = server.state().clone();
            if args.mode == "queues" || args.mode == "dashboard" {
                fill(state.store()).await?;
            }
            if args.mode == "dashboard" {
                dashboard(&state).await?;
                return Ok(());
            }
            if args.mode == "webhooks" {
                WEBHOOK_STATE.set(state.clone()).expect("set once");
            }
            let url = server.url();
            (url, Some(server))
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1_024)
        .build()?;
    match args.mode.as_str() {
        "single" => single(&client, &base, args.jobs, args.connections.unwrap_or(64)).await,
        "batch" => batch(&client, &base, args.jobs, args.connections.unwrap_or(4)).await,
        "queues" => queues(&client, &base).await,
        "webhooks" => webhooks(&client, &base, args.jobs).await,
        _ => {
            let streams = open_dashboards(&client, &base, args.dashboards).await;
            let connections = args.connections.unwrap_or(4);
            workers(&client, &base, args.jobs, connections, args.batch_complete).await;
            for s in streams {
                s.abort();
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

async fn single(client: &reqwest::Client, base: &str, jobs: u64, connections: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, next, url) = (client.clone(), next.clone(), format!("{base}/v1/jobs"));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < jobs {
                    let t = Instant::now();
                    let r = client
                        .post(&url)
                        .json(&json!({"kind": "noop", "payload": {"n": 1}}))
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status(), 202);
                    let _ = r.bytes().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    report(
        &format!("single-job POST /v1/jobs, {connections} connections"),
        jobs,
        elapsed,
        &mut latencies,
    );
}

async fn batch(client: &reqwest::Client, base: &str, jobs: u64, connections: usize) {
    let batches = jobs.div_ceil(1_000);
    let next = Arc::new(AtomicU64::new(0));
    let body: Value = json!({
        "jobs": (0..1_000).map(|n| json!({"kind": "noop", "payload": {"n": n}})).collect::<Vec<_>>()
    });
    let body = Arc::new(body.to_string());
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, next, body) = (client.clone(), next.clone(), body.clone());
            let url = format!("{base}/v1/jobs");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < batches {
                    let t = Instant::now();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_str().to_owned())
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status(), 202);
                    let _ = r.bytes().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("task"));
    }
    report(
        &format!("batch POST /v1/jobs of 1,000, {connections} connections (latency per batch)"),
        batches * 1_000,
        started.elapsed(),
        &mut latencies,
    );
}

async fn workers(
    client: &reqwest::Client,
    base: &str,
    jobs: u64,
    connections: usize,
    batch_complete: bool,
) {
    batch(client, base, jobs, 4).await;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|w| {
            let (client, done, base) = (client.clone(), done.clone(), base.to_owned());
            tokio::spawn(async move {
                loop {
                    let claimed: Value = client
                        .post(format!("{base}/v1/queues/default/claim"))
                        .json(&json!({"worker": format!("bench-{w}"), "limit": 100}))
                        .send()
                        .await
                        .expect("claim")
                        .json()
                        .await
                        .expect("claim body");
                    let list = claimed["jobs"].as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        return;
                    }
                    if batch_complete {
                        complete_all(&client, &base, &list).await;
                    } else {
                        complete_each(&client, &base, &list).await;
                    }
                    done.fetch_add(list.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    let n = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let how = if batch_complete {
        "one POST /v1/jobs/complete per claim"
    } else {
        "one complete per job"
    };
    println!(
        "HTTP workers (claim limit 100 + {how}), {connections} workers: {n} jobs in {:.2} s = \
         {:.0} jobs/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

/// One completion request per job, all at once.
async fn complete_each(client: &reqwest::Client, base: &str, list: &[Value]) {
    let completes: Vec<_> = list
        .iter()
        .map(|j| {
            let url = format!("{base}/v1/jobs/{}/complete", j["id"]);
            let body = json!({"lease_token": j["lease_token"]});
            let client = client.clone();
            async move { client.post(url).json(&body).send().await }
        })
        .collect();
    for r in futures_util::future::join_all(completes).await {
        assert_eq!(r.expect("complete").status(), 200);
    }
}

/// One batch completion for the whole claim.
async fn complete_all(client: &reqwest::Client, base: &str, list: &[Value]) {
    let jobs: Vec<Value> = list
        .iter()
        .map(|j| json!({"id": j["id"], "lease_token": j["lease_token"]}))
        .collect();
    let answer: Value = client
        .post(format!("{base}/v1/jobs/complete"))
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .expect("complete")
        .json()
        .await
        .expect("complete body");
    assert_eq!(answer["lease_lost"], json!([]), "{answer}");
}

static WEBHOOK_STATE: std::sync::OnceLock<floodgate_server::state::AppState> =
    std::sync::OnceLock::new();

/// `jobs` webhook jobs to a no-op local target at two destinations, delivered by the server's
/// delivery worker (64 at a time, signed); deliveries per second from the start of the worker.
async fn webhooks(client: &reqwest::Client, base: &str, jobs: u64) {
    let state = WEBHOOK_STATE.get().expect("an in-process server").clone();
    let target = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, target).await });
    let mut left = jobs;
    let mut n = 0u64;
    while left > 0 {
        let size = left.min(1_000);
        let batch: Vec<Value> = (0..size)
            .map(|_| {
                n += 1;
                let dest = if n.is_multiple_of(2) { "a" } else { "b" };
                json!({"kind": "webhook", "payload": {
                    "url": format!("http://127.0.0.1:{port}/hook"),
                    "destination": dest,
                    "body": {"event": "bench", "n": n},
                }})
            })
            .collect();
        let r = client
            .post(format!("{base}/v1/jobs"))
            .json(&json!({ "jobs": batch }))
            .send()
            .await
            .expect("enqueue");
        assert_eq!(r.status(), 202);
        left -= size;
    }
    let started = Instant::now();
    let worker = state
        .webhooks()
        .clone()
        .start(state.store().clone(), "bench", 64)
        .expect("the delivery worker");
    use floodgate_queue::Store;
    loop {
        let stats = state.store().queue_stats().await.expect("stats");
        let done: u64 = stats
            .iter()
            .map(|q| q.counts.succeeded + q.counts.dead)
            .sum();
        if done >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    worker.shutdown(Duration::from_secs(5)).await;
    let stats = state.store().queue_stats().await.expect("stats");
    let succeeded: u64 = stats.iter().map(|q| q.counts.succeeded).sum();
    assert_eq!(succeeded, jobs, "every delivery succeeded");
    println!(
        "webhook deliveries to a local target at 2 destinations, 64 in flight: {jobs} in {:.2} s \
         = {:.0} deliveries/s",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
}

/// 1,000,000 succeeded and 100,000 pending jobs, written with SQL (the API would take minutes).
async fn fill(store: &floodgate_queue::AnyStore) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    if let Some(s) = store.as_sqlite() {
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1100000)
             INSERT INTO floodgate_jobs (queue, kind, payload, priority, run_at, state,
                 max_attempts, created_at, updated_at, finished_at, started_at)
             SELECT 'default', 'noop', '{}', 5, x, CASE WHEN x <= 1000000 THEN 'succeeded'
                 ELSE 'pending' END, 25, x, x, CASE WHEN x <= 1000000 THEN x END,
                 CASE WHEN x <= 1000000 THEN x END FROM c",
        )
        .execute(s.pool())
        .await?;
        sqlx::query("ANALYZE").execute(s.pool()).await?;
    } else if let Some(p) = store.as_postgres() {
        sqlx::query(
            "INSERT INTO floodgate_jobs (queue, kind, payload, priority, run_at, state,
                 max_attempts, created_at, updated_at, finished_at)
             SELECT 'default', 'noop', '{}', 5, now(), CASE WHEN x <= 1000000 THEN 'succeeded'
                 ELSE 'pending' END, 25, now(), now(), CASE WHEN x <= 1000000 THEN now() END
             FROM generate_series(1, 1100000) AS x",
        )
        .execute(p.pool())
        .await?;
        sqlx::query("VACUUM ANALYZE floodgate_jobs")
            .execute(p.pool())
            .await?;
    }
    println!(
        "filled 1,100,000 jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn queues(client: &reqwest::Client, base: &str) {
    let mut latencies = Vec::new();
    let url = format!("{base}/v1/queues");
    let first = Instant::now();
    let body: Value = client
        .get(&url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    println!(
        "first GET /v1/queues (counts the table): {:.1} ms; counts {}",
        first.elapsed().as_secs_f64() * 1e3,
        body["queues"][0]["counts"]
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let r = client.get(&url).send().await.expect("GET");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_unstable();
    let pick = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1];
    println!(
        "GET /v1/queues, {} requests over 5 s (the sample refreshed every second behind them): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn report(what: &str, jobs: u64, elapsed: Duration, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    let pick = |p: f64| {
        latencies
            .get(((p * latencies.len() as f64).ceil() as usize).max(1) - 1)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what}: {jobs} jobs in {:.2} s = {:.0} jobs/s; latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// The dashboard's overview over 1,000,000 finished and 100,000 pending jobs: computed from
/// scratch each time (counts included), as the sampler does once a second.
async fn dashboard(
    state: &floodgate_server::state::AppState,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let snapshot = state.dashboard().refresh().await?;
        times.push(t.elapsed());
        assert_eq!(snapshot.overview.queues[0].counts.pending, 100_000);
    }
    times.remove(0); // the first warms the caches (and is the sampler's first, full count)
    let mut full = Vec::new();
    for _ in 0..3 {
        state.sampler().invalidate();
        let t = Instant::now();
        state.dashboard().refresh().await?;
        full.push(t.elapsed());
    }
    full.sort_unstable();
    println!(
        "  the full count behind it (once a minute, in the background): p50 {:.1} ms",
        full[1].as_secs_f64() * 1e3
    );
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "dashboard overview over 1,000,000 finished + 100,000 pending jobs, computed 20 times: \
         p50 {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
    Ok(())
}

/// `n` dashboards: event streams read to the end in the background.
async fn open_dashboards(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut response = client
            .get(format!("{base}/v1/dashboard/events"))
            .send()
            .await
            .expect("an event stream");
        streams.push(tokio::spawn(async move {
            while let Ok(Some(_)) = response.chunk().await {}
        }));
    }
    if n > 0 {
        println!("{n} dashboards open (event streams)");
    }
    streams
}
