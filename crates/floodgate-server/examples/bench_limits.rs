//! Load against the limits service of `floodgate serve`: rate checks, and permit round trips
//! (acquire, then release), from many keep-alive connections, with throughput, p50 and p99.
//!
//! ```sh
//! # an in-process server, limits on this server only:
//! cargo run --release -p floodgate-server --example bench_limits -- --mode rate
//! cargo run --release -p floodgate-server --example bench_limits -- --mode permits
//! # fleet-wide, through Redis:
//! cargo run --release -p floodgate-server --example bench_limits -- --mode rate --redis redis://127.0.0.1:6379
//! # and, for comparison, the same GCRA step sent straight to Redis (no HTTP, no server):
//! cargo run --release -p floodgate-server --example bench_limits -- --mode redis-direct --redis redis://127.0.0.1:6379
//! ```
//!
//! The in-process server has a rate limit `bench` (a billion per second per key, so every check
//! is allowed and does the full work) over 10,000 keys, and a limiter `bench` whose limit is
//! the number of connections (no one waits: the round trip is the cost). Client and server
//! share the machine's cores, as a load tool on the same host would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use floodgate_server::config::Config;
use floodgate_server::limits::config::{LimiterSpec, RateLimitSpec};
use serde_json::json;

/// Load against the limits service.
#[derive(Debug, Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_parser = ["rate", "permits", "redis-direct"], default_value = "rate")]
    mode: String,
    /// A Redis URL: the limits are fleet-wide through it.
    #[arg(long)]
    redis: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.mode == "redis-direct" {
        let url = args
            .redis
            .clone()
            .ok_or("--mode redis-direct needs --redis")?;
        return redis_direct(&url, &args).await;
    }
    let dir = std::env::temp_dir().join(format!("floodgate-bench-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let name = format!("bench{}", std::process::id());
    let config = Config {
        database_url: dir.join("bench.db").to_string_lossy().into_owned(),
        max_concurrent_requests: 4_096,
        redis_url: args.redis.clone(),
        rate_limits: BTreeMap::from([(
            name.clone(),
            RateLimitSpec {
                rate: 1_000_000_000,
                ..RateLimitSpec::default()
            },
        )]),
        limiters: BTreeMap::from([(
            name.clone(),
            LimiterSpec {
                max_concurrency: args.connections,
                ..LimiterSpec::default()
            },
        )]),
        ..Config::default()
    };
    let server = floodgate_server::server::Server::builder(config)
        .listener(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
        .node("bench")
        .without_delivery()
        .start()
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1_024)
        .build()?;
    let base = server.url();
    let scope = if args.redis.is_some() {
        "fleet (Redis)"
    } else {
        "local"
    };
    let what = match args.mode.as_str() {
        "rate" => format!("rate checks, {scope}"),
        _ => format!("permit round trips (acquire + release), {scope}"),
    };
    let mode = args.mode.clone();
    let (count, elapsed, mut latencies) = drive(&args, move |n| {
        let (client, base, name, mode) = (client.clone(), base.clone(), name.clone(), mode.clone());
        async move {
            if mode == "rate" {
                let r = client
                    .post(format!("{base}/v1/rate-limits/{name}/check"))
                    .json(&json!({"key": format!("k{}", n % 10_000)}))
                    .send()
                    .await
                    .expect("a check");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
            } else {
                // A short wait: a slot whose release timed out under load is held in Redis
                // until its lease ends, and a round trip should not fail for it.
                let r = client
                    .post(format!("{base}/v1/limiters/{name}/permits"))
                    .json(&json!({"wait": 5}))
                    .send()
                    .await
                    .expect("an acquire");
                assert_eq!(r.status(), 201);
                let body: serde_json::Value = r.json().await.expect("a permit");
                let id = body["permit_id"].as_str().expect("an id");
                let r = client
                    .delete(format!("{base}/v1/permits/{id}"))
                    .send()
                    .await
                    .expect("a release");
                assert_eq!(r.status(), 204);
            }
        }
    })
    .await;
    report(&what, args.connections, count, elapsed, &mut latencies);
    let _ = server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The same GCRA step the fleet-wide rate limit runs, sent straight to Redis from as many
/// connections: the floor under the HTTP service's fleet-wide figure.
async fn redis_direct(url: &str, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use floodgate::rate::Quota;
    use floodgate::rate::redis::{RedisRateLimiter, RedisSettings};
    let quota = Quota::per_second(1_000_000_000)?;
    let limiter = RedisRateLimiter::new(
        RedisSettings::new(url).prefix(format!("floodgate:bench{}:", std::process::id())),
        quota,
    )?;
    let (count, elapsed, mut latencies) = drive(args, move |n| {
        let limiter = limiter.clone();
        async move {
            limiter
                .take(&format!("k{}", n % 10_000), 1)
                .await
                .expect("allowed");
        }
    })
    .await;
    report(
        "GCRA steps straight to Redis (no HTTP)",
        args.connections,
        count,
        elapsed,
        &mut latencies,
    );
    Ok(())
}

/// Runs `op` from `connections` loops for a second of warm-up, then `seconds` measured.
async fn drive<F, Fut>(args: &Args, op: F) -> (u64, Duration, Vec<Duration>)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (op, measuring, stop, next) =
                (op.clone(), measuring.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    op(next.fetch_add(1, Ordering::Relaxed)).await;
                    if measuring.load(Ordering::Relaxed) {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("a connection's loop"));
    }
    (latencies.len() as u64, elapsed, latencies)
}

fn report(
    what: &str,
    connections: usize,
    count: u64,
    elapsed: Duration,
    latencies: &mut [Duration],
) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
    };
    println!(
        "{what}, {connections} connections: {:.0}/s over {:.1} s; p50 {:.2} ms, p99 {:.2} ms",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        at(0.50),
        at(0.99)
    );
}
