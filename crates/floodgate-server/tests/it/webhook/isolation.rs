//! Destinations are isolated from each other: five whose receivers accept and never answer
//! hold a few slots each, not all of them, and a healthy destination enqueued after them is
//! delivered within its own latency. (Before: 200 jobs to five hanging destinations held all
//! 64 slots until their 30 s timeout, and 20 jobs to a healthy one took 29.5 s.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use floodgate_queue::{AnyStore, JobId, JobState, Store};
use floodgate_server::config::Config;
use floodgate_server::state::AppState;
use floodgate_server::webhook::config::{Destination, WebhookConfig};
use serde_json::json;

use crate::support::{eventually, post as post_json};

const HANGING: usize = 5;
const HANGING_JOBS: usize = 200;
const HEALTHY_JOBS: usize = 20;

/// A receiver that accepts connections and never answers (holding them); its port and how
/// many connections it holds.
async fn hanging_receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let held = held.clone();
        async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
                held.store(sockets.len(), Ordering::SeqCst);
            }
        }
    });
    (port, held)
}

/// A receiver that answers 200 at once; its port and when each job's delivery arrived.
async fn healthy_receiver() -> (u16, Arc<Mutex<HashMap<String, Instant>>>) {
    let arrived = Arc::new(Mutex::new(HashMap::new()));
    let app = Router::new().route(
        "/hook",
        post({
            let arrived = arrived.clone();
            move |headers: HeaderMap| async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                arrived.lock().unwrap().insert(id, Instant::now());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, arrived)
}

// The machine lock is a process-wide std lock shared with the blocking process tests; this
// test's own runtime holds it throughout, and nothing else on that runtime takes it.
#[allow(clippy::await_holding_lock)]
async fn healthy_delivered_within_a_second_while_five_hang(store: AnyStore) {
    // Measures latency: not beside the process tests' load. (A p99 under 1 s.)
    let _machine = crate::support::process::whole_machine();
    let (hang_port, held) = hanging_receiver().await;
    let (ok_port, arrived) = healthy_receiver().await;
    let local = || Destination {
        allow_private: Some(true),
        ..Destination::default()
    };
    let mut destinations: std::collections::BTreeMap<_, _> = (0..HANGING)
        .map(|i| (format!("hang{i}"), local()))
        .collect();
    destinations.insert("healthy".to_owned(), local());
    let config = Config {
        webhooks: WebhookConfig {
            destinations,
            ..WebhookConfig::default() // 64 slots, 16 per destination, a 30 s timeout
        },
        ..Config::default()
    };
    let state = AppState::new(store.clone(), config);
    let app = floodgate_server::app(state.clone());
    let worker = state
        .webhooks()
        .clone()
        .start(store.clone(), "test", 64)
        .unwrap();
    let enqueue = |destination: String, port: u16| {
        let app = app.clone();
        async move {
            let payload = json!({
                "url": format!("http://127.0.0.1:{port}/hook"),
                "body": {"event": "test"},
                "destination": destination,
            });
            let a = post_json(
                &app,
                "/v1/jobs",
                json!({"kind": "webhook", "payload": payload}),
            )
            .await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
            a.body["id"].as_i64().unwrap()
        }
    };
    for i in 0..HANGING_JOBS {
        enqueue(format!("hang{}", i % HANGING), hang_port).await;
    }
    // The hanging destinations hold every slot they may (two each: the limit of a
    // destination that never answered) before the healthy jobs come.
    let saturated = || async {
        let n = held.load(Ordering::SeqCst);
        if n >= HANGING * 2 { Ok(n) } else { Err(n) }
    };
    eventually(
        "the hanging destinations at their limits",
        Duration::from_secs(20),
        saturated,
    )
    .await;

    let mut healthy = Vec::new();
    for _ in 0..HEALTHY_JOBS {
        let id = enqueue("healthy".to_owned(), ok_port).await;
        healthy.push((id, Instant::now()));
    }
    for (id, _) in &healthy {
        let what = format!("healthy job {id} delivered while five destinations hang");
        eventually(&what, Duration::from_secs(25), || async {
            let job = store.job(JobId(*id)).await.unwrap().unwrap();
            if job.state == JobState::Succeeded {
                Ok(())
            } else {
                Err(job.state)
            }
        })
        .await;
    }
    let arrived = arrived.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = healthy
        .iter()
        .map(|(id, enqueued)| arrived[&format!("job_{id}")].duration_since(*enqueued))
        .collect();
    latencies.sort();
    let slowest = *latencies.last().unwrap();
    let holding = held.load(Ordering::SeqCst);
    assert!(
        slowest < Duration::from_secs(1),
        "the healthy destination's slowest delivery took {slowest:?} (all: {latencies:?}); \
         the hanging ones hold {holding} connections"
    );
    // Two slots each (the limit of a destination that never answered), not every slot.
    assert!(
        holding <= HANGING * 2,
        "the hanging destinations hold {holding} slots"
    );
    worker.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_destinations_never_delay_a_healthy_one_on_sqlite() {
    let store = floodgate_queue::SqliteStore::in_memory().await.unwrap();
    healthy_delivered_within_a_second_while_five_hang(store.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_destinations_never_delay_a_healthy_one_on_postgres() {
    let Some(schema) = floodgate_testing::postgres_schema("isolation").await else {
        return;
    };
    let store = floodgate_queue::PgStore::builder_with(schema.connect_options())
        .schema(schema.name())
        .connect()
        .await
        .unwrap();
    healthy_delivered_within_a_second_while_five_hang(store.into()).await;
}
