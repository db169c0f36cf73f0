//! Webhook delivery end to end against a local axum target: success (signature verified by the
//! receiver), 500 then 200, 429 with Retry-After, 410 (the destination disabled, then
//! re-enabled), 404, a request slower than the timeout, a refused connection, a redirect (not
//! followed), a private address refused, and a breaker that opens for one destination while
//! another keeps flowing.

mod isolation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{app_with, get as get_json, post as post_json};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use floodgate_queue::{JobId, Store};
use floodgate_server::config::Config;
use floodgate_server::state::AppState;
use floodgate_server::webhook::config::{Destination, WebhookConfig};
use floodgate_server::webhook::signature::{self, Secret};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the target saw: hits per route, with the time of each.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<HashMap<String, Vec<Instant>>>>);

impl Seen {
    fn hit(&self, route: &str) -> usize {
        let mut all = self.0.lock().unwrap();
        let hits = all.entry(route.to_owned()).or_default();
        hits.push(Instant::now());
        hits.len()
    }
    fn count(&self, route: &str) -> usize {
        self.0.lock().unwrap().get(route).map_or(0, Vec::len)
    }
    fn times(&self, route: &str) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .get(route)
            .cloned()
            .unwrap_or_default()
    }
}

async fn target(
    State(seen): State<Seen>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap, String) {
    let n = seen.hit(&route);
    let mut out = HeaderMap::new();
    let status = match route.as_str() {
        "ok" => {
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let secret = Secret::parse(SECRET).unwrap();
            let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
            if signature::verify(
                &secret,
                &h("webhook-id"),
                ts,
                body.as_bytes(),
                &h("webhook-signature"),
            ) {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
        "flaky" if n == 1 => StatusCode::INTERNAL_SERVER_ERROR,
        "flaky" => StatusCode::OK,
        "paced" if n == 1 => {
            out.insert("retry-after", "1".parse().unwrap());
            StatusCode::TOO_MANY_REQUESTS
        }
        "paced" => StatusCode::OK,
        "dated" if n == 1 => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(2);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            out.insert("retry-after", date.parse().unwrap());
            StatusCode::SERVICE_UNAVAILABLE
        }
        "dated" => StatusCode::OK,
        "gone" => StatusCode::GONE,
        "missing" => StatusCode::NOT_FOUND,
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK
        }
        "redirect" => {
            out.insert("location", "/hook/ok".parse().unwrap());
            StatusCode::FOUND
        }
        "broken" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    (status, out, format!("answer from {route}"))
}

/// The target on a free port, and what it saw.
async fn start_target() -> (u16, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/hook/{route}", post(target))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// Settings for the target's destinations; a destination's breaker opens after `failures` in a
/// row.
fn config(failures: u32) -> Config {
    let local = || Destination {
        allow_private: Some(true),
        ..Destination::default()
    };
    let destinations = [
        "ok", "flaky", "paced", "dated", "gone", "missing", "slow", "redirect", "down", "broken",
        "other",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), local()))
    .collect();
    Config {
        webhooks: WebhookConfig {
            secrets: vec![SECRET.to_owned()],
            timeout: 1.0,
            connect_timeout: 1.0,
            schedule: Some(vec![0.1, 0.1]),
            breaker_failures: failures,
            breaker_wait: 60.0,
            destinations,
            ..WebhookConfig::default()
        },
        ..Config::default()
    }
}

async fn enqueue_hook(app: &Router, url: &str, destination: Option<&str>) -> i64 {
    let mut payload = json!({"url": url, "body": {"event": "test"}});
    if let Some(d) = destination {
        payload["destination"] = json!(d);
    }
    let a = post_json(
        app,
        "/v1/jobs",
        json!({"kind": "webhook", "payload": payload}),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    a.body["id"].as_i64().unwrap()
}

/// Waits (up to 20 s) until the job is finished; the job.
async fn finished(state: &AppState, id: i64) -> floodgate_queue::Job {
    let what = format!("job {id} finished");
    crate::support::eventually(&what, Duration::from_secs(20), || async {
        let job = state.store().job(JobId(id)).await.unwrap().unwrap();
        if job.state.is_finished() {
            Ok(job)
        } else {
            Err(job)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_answer_is_handled() {
    let (port, seen) = start_target().await;
    let (app, state) = app_with(config(10)).await;
    let worker = state
        .webhooks()
        .clone()
        .start(state.store().clone(), "test", 16)
        .unwrap();
    let url = |route: &str| format!("http://127.0.0.1:{port}/hook/{route}");
    let ok = enqueue_hook(&app, &url("ok"), Some("ok")).await;
    let flaky = enqueue_hook(&app, &url("flaky"), Some("flaky")).await;
    let paced = enqueue_hook(&app, &url("paced"), Some("paced")).await;
    let dated = enqueue_hook(&app, &url("dated"), Some("dated")).await;
    let gone = enqueue_hook(&app, &url("gone"), Some("gone")).await;
    let missing = enqueue_hook(&app, &url("missing"), Some("missing")).await;
    let slow = enqueue_hook(&app, &url("slow"), Some("slow")).await;
    let redirect = enqueue_hook(&app, &url("redirect"), Some("redirect")).await;
    let down = enqueue_hook(&app, "http://127.0.0.1:1/hook/down", Some("down")).await;
    let private = enqueue_hook(&app, &format!("http://localhost:{port}/hook/ok"), None).await;

    let job = finished(&state, ok).await;
    assert_eq!(job.state, floodgate_queue::JobState::Succeeded, "{job:?}");
    assert_eq!(
        job.result.as_ref().unwrap()["status"],
        200,
        "the receiver verified the signature"
    );
    assert_eq!(job.result.as_ref().unwrap()["body"], "answer from ok");

    let job = finished(&state, flaky).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Succeeded, 2)
    );

    let job = finished(&state, paced).await;
    assert_eq!(job.state, floodgate_queue::JobState::Succeeded);
    let times = seen.times("paced");
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "Retry-After: 1 was honoured: {:?}",
        times[1] - times[0]
    );

    let job = finished(&state, dated).await;
    assert_eq!(job.state, floodgate_queue::JobState::Succeeded);
    let times = seen.times("dated");
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "a 503 with Retry-After as an HTTP date was honoured: {:?}",
        times[1] - times[0]
    );

    let job = finished(&state, gone).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 1)
    );
    assert!(state.webhooks().is_disabled("gone"));
    // Disabled in the store: a new deliverer (a restart, another node) knows it too.
    let fresh = floodgate_server::webhook::engine(
        &config(10).webhooks,
        state.store().clone(),
        std::sync::Arc::new(floodgate_server::groups::PausedGroups::new(
            state.store().clone(),
            Duration::from_secs(1),
        )),
    )
    .unwrap();
    let disabled = fresh.disabled().await.unwrap();
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0].name, "gone");
    assert!(
        disabled[0].reason.contains("410 Gone"),
        "{}",
        disabled[0].reason
    );
    let listed = get_json(&app, "/v1/webhooks/destinations").await;
    assert_eq!(listed.body["disabled"][0]["destination"], "gone");

    // A job for a disabled destination waits, unclaimed, until the destination is enabled.
    let again = enqueue_hook(&app, &url("gone"), Some("gone")).await;
    finished(&state, missing).await;
    // A witness enqueued after it is delivered: the claims have passed over the waiting job.
    let witness = enqueue_hook(&app, &url("witness"), Some("witness")).await;
    finished(&state, witness).await;
    let waiting = state.store().job(JobId(again)).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state, waiting.attempt),
        (floodgate_queue::JobState::Pending, 0)
    );
    assert_eq!(waiting.updated_at, waiting.created_at, "never claimed");
    assert_eq!(
        seen.count("gone"),
        1,
        "a disabled destination is not called"
    );
    let enabled = post_json(&app, "/v1/webhooks/destinations/gone/enable", json!({})).await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert!(!state.webhooks().is_disabled("gone"));
    let job = finished(&state, again).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 1),
        "delivered once enabled (and the target still answers 410)"
    );
    assert_eq!(seen.count("gone"), 2);
    let not_disabled = post_json(&app, "/v1/webhooks/destinations/nope/enable", json!({})).await;
    assert_eq!(not_disabled.status, StatusCode::NOT_FOUND);

    let job = finished(&state, missing).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 1),
        "4xx: never retried"
    );
    assert!(job.last_error.unwrap().contains("HTTP 404"));

    let job = finished(&state, slow).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 3),
        "timeouts retried on the schedule"
    );
    assert!(job.last_error.unwrap().contains("timed out"));

    let job = finished(&state, redirect).await;
    assert_eq!(job.state, floodgate_queue::JobState::Dead);
    assert!(job.last_error.unwrap().contains("HTTP 302"));
    assert_eq!(seen.count("ok"), 1, "the redirect was not followed");

    let job = finished(&state, down).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 3)
    );

    let job = finished(&state, private).await;
    assert_eq!(
        (job.state, job.attempt),
        (floodgate_queue::JobState::Dead, 1)
    );
    let error = job.last_error.unwrap();
    assert!(
        error.contains("loopback") || error.contains("refused"),
        "{error}"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

/// Two failures open the destination's breaker: its jobs wait (snoozed, no attempt spent, the
/// receiver not called) while another destination keeps being delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_breaker_holds_one_destination_and_not_the_others() {
    let (port, seen) = start_target().await;
    let (app, state) = app_with(config(2)).await;
    let worker = state
        .webhooks()
        .clone()
        .start(state.store().clone(), "test", 4)
        .unwrap();
    let url = |route: &str| format!("http://127.0.0.1:{port}/hook/{route}");
    let (broken_url, other_url) = (url("broken"), url("other"));
    let mut broken = Vec::new();
    for _ in 0..6 {
        broken.push(enqueue_hook(&app, &broken_url, Some("broken")).await);
    }
    crate::support::eventually(
        "the broken destination's breaker opens",
        Duration::from_secs(20),
        || {
            let app = app.clone();
            async move {
                let listed = get_json(&app, "/v1/webhooks/destinations").await;
                let open = listed.body["breakers"].as_array().is_some_and(|b| {
                    b.iter()
                        .any(|b| b["destination"] == "broken" && b["state"] == "open")
                });
                if open { Ok(()) } else { Err(listed.body) }
            }
        },
    )
    .await;
    let mut others = Vec::new();
    for _ in 0..10 {
        others.push(enqueue_hook(&app, &other_url, Some("other")).await);
    }
    for id in others {
        assert_eq!(
            finished(&state, id).await.state,
            floodgate_queue::JobState::Succeeded
        );
    }
    // The breaker opened after two failures in a row; later calls were not made. (The worker
    // runs 4 deliveries at once: on a busy machine all 4 can be in flight before the first
    // failure is counted, and a closed breaker lets each through.)
    assert!(
        seen.count("broken") <= 4,
        "the open breaker kept calling: {}",
        seen.count("broken")
    );
    let mut waiting = 0;
    for id in broken {
        let job = state.store().job(JobId(id)).await.unwrap().unwrap();
        if !job.state.is_finished() {
            waiting += 1;
        }
    }
    assert!(
        waiting >= 3,
        "jobs of the broken destination wait for the breaker ({waiting})"
    );
    // While the breaker is open, the destination's new jobs are not even claimed: no claim,
    // no snooze, no attempt (their rows are untouched since the enqueue).
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(enqueue_hook(&app, &broken_url, Some("broken")).await);
    }
    // A witness enqueued after them is delivered: the claims have passed over them.
    let witness = enqueue_hook(&app, &other_url, Some("other")).await;
    finished(&state, witness).await;
    for id in later {
        let job = state.store().job(JobId(id)).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (floodgate_queue::JobState::Pending, 0)
        );
        assert_eq!(job.updated_at, job.created_at, "job {id} was claimed");
    }
    let listed = get_json(&app, "/v1/webhooks/destinations").await;
    let breakers = listed.body["breakers"].as_array().unwrap();
    assert!(
        breakers
            .iter()
            .any(|b| b["destination"] == "broken" && b["state"] == "open"),
        "{breakers:?}"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A destination's rate limit spaces its deliveries out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_rate_limit_spaces_deliveries() {
    let (port, seen) = start_target().await;
    let mut config = config(10);
    config.webhooks.destinations.insert(
        "limited".to_owned(),
        Destination {
            allow_private: Some(true),
            rate_per_second: Some(5),
            ..Destination::default()
        },
    );
    let (app, state) = app_with(config).await;
    let url = format!("http://127.0.0.1:{port}/hook/limited");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(enqueue_hook(&app, &url, Some("limited")).await);
    }
    let worker = state
        .webhooks()
        .clone()
        .start(state.store().clone(), "test", 16)
        .unwrap();
    for id in ids {
        assert_eq!(
            finished(&state, id).await.state,
            floodgate_queue::JobState::Succeeded
        );
    }
    let times = seen.times("limited");
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= Duration::from_millis(800),
        "10 deliveries at 5/s took {span:?}"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

/// With Redis, a destination's rate limit is shared: two servers (two deliverers on two
/// stores) together deliver at the destination's rate, not twice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_in_redis_is_shared_by_every_server() {
    let Some(redis) = floodgate_testing::redis_url().await else {
        return;
    };
    let (port, seen) = start_target().await;
    let name = format!("shared-{}", std::process::id());
    let settings = || {
        let mut config = config(10);
        config.webhooks.redis_url = Some(redis.clone());
        config.webhooks.destinations.insert(
            name.clone(),
            Destination {
                allow_private: Some(true),
                rate_per_second: Some(4),
                ..Destination::default()
            },
        );
        config
    };
    let url = format!("http://127.0.0.1:{port}/hook/shared");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (app, state) = app_with(settings()).await;
        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(enqueue_hook(&app, &url, Some(&name)).await);
        }
        nodes.push((state, ids));
    }
    let workers: Vec<_> = nodes
        .iter()
        .map(|(state, _)| {
            state
                .webhooks()
                .clone()
                .start(state.store().clone(), "test", 16)
                .unwrap()
        })
        .collect();
    for (state, ids) in &nodes {
        for id in ids {
            assert_eq!(
                finished(state, *id).await.state,
                floodgate_queue::JobState::Succeeded
            );
        }
    }
    // 12 deliveries at 4/s with a burst of 4, shared: 8 waits of 250 ms, 2 s from the first to
    // the last (alone, each server would need 2 waits: 0.5 s).
    let times = seen.times("shared");
    assert_eq!(times.len(), 12);
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= Duration::from_millis(1_800),
        "12 deliveries at 4/s shared took {span:?}"
    );
    for w in workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
}
