//! `floodgate demo`: a self-contained tour in 30 seconds. It starts the server in this
//! process on a temporary SQLite file, a local HTTP target that misbehaves on purpose (some
//! 500s, 429s with Retry-After, slow answers past the timeout, an endpoint that answers 410,
//! and a host that is down), enqueues a few thousand webhook jobs across them, shows progress
//! live, prints breaker openings and disabled destinations as they happen, and ends with a
//! summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use floodgate::breaker::RegistryEvent;
use floodgate_queue::{JobState, ListJobs, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::config::Config;
use crate::server::Server;
use crate::state::AppState;
use crate::webhook::config::{Destination, WebhookConfig};

/// How many jobs go to each destination.
const PLAN: &[(&str, u64)] = &[
    ("fast", 2_000),
    ("flaky", 400),
    ("paced", 200),
    ("slow", 20),
    ("gone", 40),
    ("down", 20),
];

pub(super) fn run(seconds: u64) -> ExitCode {
    super::run_to_exit(true, demo(Duration::from_secs(seconds)))
}

/// The misbehaving target: `/fast` answers at once; `/flaky` fails every third request;
/// `/paced` asks every other request to wait a second; `/slow` answers after the timeout;
/// `/gone` answers 410.
async fn target(
    State(count): State<Arc<AtomicU64>>,
    Path(route): Path<String>,
) -> (StatusCode, HeaderMap) {
    let n = count.fetch_add(1, Ordering::Relaxed);
    let mut headers = HeaderMap::new();
    let status = match route.as_str() {
        "flaky" if n % 3 == 0 => StatusCode::INTERNAL_SERVER_ERROR,
        "paced" if n % 2 == 0 => {
            headers.insert("retry-after", axum::http::HeaderValue::from_static("1"));
            StatusCode::TOO_MANY_REQUESTS
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK
        }
        "gone" => StatusCode::GONE,
        _ => StatusCode::OK,
    };
    (status, headers)
}

fn config(dir: &std::path::Path) -> Config {
    let mut webhooks = WebhookConfig {
        secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()],
        timeout: 1.0,
        connect_timeout: 1.0,
        schedule: Some(vec![1.0, 2.0, 4.0]),
        breaker_failures: 5,
        breaker_wait: 3.0,
        ..WebhookConfig::default()
    };
    for (name, _) in PLAN {
        webhooks.destinations.insert(
            (*name).to_owned(),
            Destination {
                allow_private: Some(true),
                ..Destination::default()
            },
        );
    }
    Config {
        database_url: dir.join("demo.db").to_string_lossy().into_owned(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        webhooks,
        ..Config::default()
    }
}

async fn demo(length: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("floodgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let target_app = axum::Router::new()
        .route("/{route}", axum::routing::post(target))
        .with_state(Arc::new(AtomicU64::new(0)));
    let targets = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = targets.local_addr()?.port();
    tokio::spawn(async move { axum::serve(targets, target_app).await });

    // Interleaved, as traffic to several receivers arrives: every destination is reached in
    // the first second, not after the 2,000 `fast` jobs.
    let most = PLAN.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let mut jobs = Vec::new();
    for i in 0..most {
        for (name, _) in PLAN.iter().filter(|(_, n)| i < *n) {
            let url = match *name {
                "down" => "http://127.0.0.1:1/down".to_owned(),
                _ => format!("http://127.0.0.1:{port}/{name}"),
            };
            let payload = json!({"url": url, "destination": name, "body": {"n": i}});
            jobs.push(crate::webhook::job::new_job(payload)?);
        }
    }
    let total = jobs.len() as u64;

    // The whole server: delivery, maintenance and the dashboard's sampler (whose charts fill
    // from the start, not from when a page opens).
    let server = Server::builder(config(&dir)).node("demo").start().await?;
    let state = server.state().clone();
    let mut events = state.webhooks().subscribe();
    let api_url = server.url();
    println!("floodgate demo: the server is at {api_url}");
    println!("  dashboard: {api_url}/   (open it while the demo runs)");
    println!("  API:       {api_url}/v1/queues, {api_url}/v1/webhooks/destinations");
    for chunk in jobs.chunks(1_000) {
        state.store().enqueue_many(chunk.to_vec()).await?;
    }
    println!(
        "enqueued {total} webhook jobs across {} destinations",
        PLAN.len()
    );

    let transitions = Arc::new(AtomicU64::new(0));
    let live = std::io::stdout().is_terminal();
    let bars = Bars::new(live, total)?;
    let printer = {
        let (bar, transitions) = (bars.top.clone(), transitions.clone());
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let RegistryEvent::Breaker(e) = event {
                    transitions.fetch_add(1, Ordering::Relaxed);
                    let line = format!(
                        "breaker {}: {} -> {} ({})",
                        e.breaker, e.from, e.to, e.reason
                    );
                    say(&bar, live, line);
                }
            }
        })
    };
    let started = Instant::now();
    let mut gone_reported = false;
    let mut last_line = Instant::now();
    loop {
        let stats = state.store().queue_stats().await?;
        let c = stats
            .iter()
            .find(|q| q.queue == crate::webhook::job::QUEUE)
            .map(|q| q.counts)
            .unwrap_or_default();
        let finished = c.succeeded + c.dead + c.cancelled;
        bars.show(&c);
        if !live && last_line.elapsed() >= Duration::from_secs(1) {
            println!(
                "{:>4.1}s  pending {} · running {} · retrying {} · delivered {} · dead {}",
                started.elapsed().as_secs_f64(),
                c.pending,
                c.running,
                c.failed,
                c.succeeded,
                c.dead
            );
            last_line = Instant::now();
        }
        if !gone_reported && state.webhooks().is_disabled("gone") {
            say(
                &bars.top,
                live,
                "destination gone answered 410 Gone: disabled (on every node, across restarts); \
                 its other jobs wait until it is enabled again"
                    .to_owned(),
            );
            gone_reported = true;
        }
        // Jobs of a disabled destination wait for an operator: done when only they are left.
        let held = if gone_reported && c.running + c.failed == 0 {
            held_for_disabled(&state).await?
        } else {
            0
        };
        if finished + held >= total || started.elapsed() > length {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bars.clear();
    printer.abort();
    summary(
        &state,
        started.elapsed(),
        transitions.load(Ordering::Relaxed),
    )
    .await?;
    println!("the server stops now; `floodgate serve` runs it for real");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// One progress bar per state in a terminal (hidden otherwise), and a line above them for
/// events.
struct Bars {
    top: ProgressBar,
    states: Vec<(&'static str, ProgressBar)>,
    _multi: MultiProgress,
}

impl Bars {
    fn new(live: bool, total: u64) -> Result<Bars, indicatif::style::TemplateError> {
        let multi = MultiProgress::new();
        if !live {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let top = multi.add(ProgressBar::new(total));
        top.set_style(ProgressStyle::with_template("{elapsed:>4} {wide_msg}")?);
        top.set_message(format!("{total} webhook jobs"));
        let mut states = Vec::new();
        for name in ["waiting", "running", "retrying", "delivered", "dead"] {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(ProgressStyle::with_template(
                "{prefix:>10} {bar:40.cyan/blue} {pos:>5}/{len}",
            )?);
            bar.set_prefix(name);
            states.push((name, bar));
        }
        Ok(Bars {
            top,
            states,
            _multi: multi,
        })
    }

    fn show(&self, c: &floodgate_queue::StateCounts) {
        for (name, bar) in &self.states {
            bar.set_position(match *name {
                "waiting" => c.pending,
                "running" => c.running,
                "retrying" => c.failed,
                "delivered" => c.succeeded,
                _ => c.dead,
            });
        }
    }

    fn clear(&self) {
        for (_, bar) in &self.states {
            bar.finish_and_clear();
        }
        self.top.finish_and_clear();
    }
}

/// Pending jobs of disabled destinations (they wait for an operator to enable them).
async fn held_for_disabled(state: &AppState) -> Result<u64, floodgate_queue::StoreError> {
    let mut held = 0;
    let mut list = ListJobs {
        queue: Some(crate::webhook::job::QUEUE.to_owned()),
        state: Some(JobState::Pending),
        limit: 1_000,
        ..ListJobs::default()
    };
    loop {
        let page = state.store().list(&list).await?;
        held += page
            .jobs
            .iter()
            .filter(|j| j.group().is_some_and(|g| state.webhooks().is_disabled(g)))
            .count() as u64;
        match page.next {
            Some(next) => list.before = Some(next),
            None => return Ok(held),
        }
    }
}

/// A line above the progress bars in a terminal, a plain line otherwise.
fn say(bar: &ProgressBar, live: bool, line: String) {
    if live {
        bar.println(line);
    } else {
        println!("{line}");
    }
}

async fn summary(
    state: &AppState,
    took: Duration,
    transitions: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut per: HashMap<String, (u64, u64, u64, u64)> = HashMap::new();
    let mut latencies = Vec::new();
    let mut list = ListJobs {
        queue: Some(crate::webhook::job::QUEUE.to_owned()),
        limit: 1_000,
        ..ListJobs::default()
    };
    loop {
        let page = state.store().list(&list).await?;
        for job in &page.jobs {
            let dest = job.payload["destination"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            let entry = per.entry(dest).or_default();
            match job.state {
                JobState::Succeeded => {
                    entry.0 += 1;
                    entry.1 += u64::from(job.attempt.saturating_sub(1));
                    if let Some(done) = job.finished_at {
                        latencies.push((done - job.created_at).num_milliseconds().max(0));
                    }
                }
                JobState::Dead => entry.2 += 1,
                JobState::Cancelled => {}
                _ => entry.3 += 1,
            }
        }
        match page.next {
            Some(next) => list.before = Some(next),
            None => break,
        }
    }
    latencies.sort_unstable();
    let pick = |p: f64| {
        latencies
            .get(((p * latencies.len() as f64).ceil() as usize).max(1) - 1)
            .copied()
            .unwrap_or(0)
    };
    let mut table = comfy_table::Table::new();
    table.set_header([
        "destination",
        "delivered",
        "retries",
        "dead",
        "waiting",
        "disabled",
    ]);
    let mut waiting = 0;
    for (name, _) in PLAN {
        let (ok, retries, dead, wait) = per.get(*name).copied().unwrap_or_default();
        waiting += wait;
        let disabled = if state.webhooks().is_disabled(name) {
            "yes"
        } else {
            ""
        };
        table.add_row([
            (*name).to_owned(),
            ok.to_string(),
            retries.to_string(),
            dead.to_string(),
            wait.to_string(),
            disabled.to_owned(),
        ]);
    }
    println!("{table}");
    println!(
        "in {:.1} s: delivery latency (enqueue to success) p50 {} ms, p99 {} ms; {transitions} \
         breaker transitions",
        took.as_secs_f64(),
        pick(0.5),
        pick(0.99)
    );
    if waiting > 0 {
        println!(
            "{waiting} jobs are still waiting: a disabled destination's jobs wait for \
             `POST /v1/webhooks/destinations/{{name}}/enable`; others wait for an open breaker's \
             probe or their next retry, and a real server delivers or buries them on schedule"
        );
    }
    Ok(())
}
