//! The dashboard: its page and assets, the overview and its live stream, and the endpoints
//! the page acts through (counts, actions on every job matching a filter, failure groups).
//! `oneshot` here; the page in a real browser is `dashboard_browser` below.

use std::time::Duration;

use crate::support::{app_with, enqueue, events, get, post, send, test_app};
use axum::http::{Method, StatusCode};
use floodgate_queue::{Claim, NewJob, Store};
use floodgate_server::config::Config;
use serde_json::json;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

fn with_tokens() -> Config {
    Config {
        api_token: Some(ADMIN.into()),
        read_only_token: Some(READER.into()),
        ..Config::default()
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_token() {
    let (app, _) = app_with(with_tokens()).await;
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.body.as_str().unwrap();
    let on_disk = |asset: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&asset[1..]);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // Each asset the page names is served as itself, with its type: an HTML fallback page
    // answered 200 for every path would fail here.
    for (asset, kind) in [
        ("/assets/js/main.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/vendor/uPlot.iife.min.js", "text/javascript"),
    ] {
        assert!(html.contains(asset), "{asset}");
        let a = get(&app, asset).await;
        assert_eq!(a.status, StatusCode::OK, "{asset}");
        let served = a.headers["content-type"].to_str().unwrap();
        assert!(served.starts_with(kind), "{asset}: {served}");
        assert!(
            a.body.as_str() == Some(on_disk(asset).as_str()),
            "{asset} is not the file"
        );
    }
    let js = get(&app, "/assets/js/main.js").await;
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // Every module of the script is served, as JavaScript (a module with another type is
    // refused by the browser), so every import resolves.
    let modules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/js");
    for entry in std::fs::read_dir(modules).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let a = get(&app, &format!("/assets/js/{name}")).await;
        assert_eq!(a.status, StatusCode::OK, "{name} is not served");
        let file = on_disk(&format!("/assets/js/{name}"));
        assert!(
            a.body.as_str() == Some(file.as_str()),
            "{name} is not the file"
        );
        assert!(
            a.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"),
            "{name}"
        );
    }
    let missing = get(&app, "/assets/../Cargo.toml").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/v1/dashboard").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_overview_counts_queues_and_says_what_the_token_allows() {
    let (app, state) = app_with(with_tokens()).await;
    for n in 0..3 {
        state
            .store()
            .enqueue(NewJob::new("email", json!({ "n": n })))
            .await
            .unwrap();
    }
    let reader = format!("Bearer {READER}");
    let as_reader = send(
        &app,
        Method::GET,
        "/v1/dashboard",
        None,
        &[("authorization", &reader)],
    )
    .await;
    assert_eq!(as_reader.status, StatusCode::OK, "{:?}", as_reader.body);
    assert_eq!(as_reader.body["access"], "read");
    assert_eq!(as_reader.body["queues"][0]["queue"], "default");
    assert_eq!(as_reader.body["queues"][0]["counts"]["pending"], 3);
    assert_eq!(as_reader.body["limiters"][0]["name"], "http");
    // The time the overview took to compute: measured, so above zero, and well under the
    // second between two of them.
    let compute_ms = as_reader.body["compute_ms"].as_f64().unwrap();
    assert!(compute_ms > 0.0 && compute_ms < 1_000.0, "{compute_ms}");
    let admin = format!("Bearer {ADMIN}");
    let as_admin = send(
        &app,
        Method::GET,
        "/v1/dashboard",
        None,
        &[("authorization", &admin)],
    )
    .await;
    assert_eq!(as_admin.body["access"], "admin");
    let (open, _) = test_app().await;
    assert_eq!(
        get(&open, "/v1/dashboard").await.body["access"],
        "admin",
        "no tokens configured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_the_overview_at_once_then_as_it_changes_and_ends_at_shutdown() {
    let (app, state) = app_with(Config {
        queue_stats_max_age: Duration::ZERO,
        ..Config::default()
    })
    .await;
    enqueue(&app, "email", json!({})).await;
    let (status, mut stream) = events(&app, "/v1/dashboard/events", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let first = stream.next().await.expect("an overview at once");
    assert_eq!(first["queues"][0]["counts"]["pending"], 1);
    assert_eq!(first["access"], "admin");
    // A second subscriber shares the sampler: it gets the same overview, not a new count.
    let (_, mut second) = events(&app, "/v1/dashboard/events", &[]).await;
    let shared = second.next().await.unwrap();
    if shared["at"] != first["at"] {
        // The sampler's tick came between the two subscriptions: the first subscriber gets
        // that same computation next (or a later one, should another tick come first).
        let mut seen_it = false;
        for _ in 0..3 {
            let next = tokio::time::timeout(Duration::from_secs(3), stream.next())
                .await
                .unwrap()
                .unwrap();
            if next["at"] == shared["at"] {
                seen_it = true;
                break;
            }
        }
        assert!(seen_it, "one computation feeds every subscriber");
    }

    enqueue(&app, "email", json!({})).await;
    let mut seen = 1;
    for _ in 0..10 {
        let next = tokio::time::timeout(Duration::from_secs(3), stream.next())
            .await
            .expect("an overview a second")
            .unwrap();
        seen = next["queues"][0]["counts"]["pending"].as_u64().unwrap();
        if seen == 2 {
            break;
        }
    }
    assert_eq!(seen, 2, "the new job shows without asking again");
    state.shutting_down().cancel();
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends when the server shuts down");
}

#[tokio::test]
async fn counts_bulk_actions_and_failure_groups_follow_the_filter() {
    let (app, state) = app_with(with_tokens()).await;
    let admin = format!("Bearer {ADMIN}");
    let as_admin = [("authorization", admin.as_str())];
    let store = state.store();
    for (customer, error) in [
        (42, "connection refused"),
        (42, "connection refused"),
        (7, "HTTP 500"),
    ] {
        store
            .enqueue(NewJob::new("pay", json!({"customer": {"id": customer}})).max_attempts(1))
            .await
            .unwrap();
        let job = store.claim(&Claim::new("w", 1)).await.unwrap().remove(0);
        store.dead(job.lease().unwrap(), error).await.unwrap();
    }
    store.enqueue(NewJob::new("mail", json!({}))).await.unwrap();

    let groups = send(&app, Method::GET, "/v1/failures", None, &as_admin).await;
    assert_eq!(groups.status, StatusCode::OK, "{:?}", groups.body);
    assert_eq!(groups.body["groups"][0]["error"], "connection refused");
    assert_eq!(groups.body["groups"][0]["count"], 2);
    assert_eq!(groups.body["groups"][1]["count"], 1);

    let count = |q: &'static str| {
        let app = app.clone();
        let admin = admin.clone();
        async move {
            let a = send(
                &app,
                Method::GET,
                &format!("/v1/jobs/count?{q}"),
                None,
                &[("authorization", &admin)],
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{q}: {:?}", a.body);
            a.body["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count("state=dead").await, 3);
    assert_eq!(count("state=dead&path=customer.id&value=42").await, 2);
    assert_eq!(count("error=HTTP%20500").await, 1);
    let listed = send(
        &app,
        Method::GET,
        "/v1/jobs?path=customer.id&value=7",
        None,
        &as_admin,
    )
    .await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 1);
    let bad = send(
        &app,
        Method::GET,
        "/v1/jobs/count?path=a..b&value=1",
        None,
        &as_admin,
    )
    .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
    );

    // Read-only sessions look but cannot act.
    let reader = format!("Bearer {READER}");
    let refused = send(
        &app,
        Method::POST,
        "/v1/jobs/retry",
        Some(json!({"kind": "pay"})),
        &[("authorization", &reader)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let retried = send(
        &app,
        Method::POST,
        "/v1/jobs/retry",
        Some(json!({"kind": "pay", "path": "customer.id", "value": "42"})),
        &as_admin,
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    assert_eq!(retried.body["affected"], 2);
    assert_eq!(count("state=dead").await, 1);
    assert_eq!(count("state=pending&kind=pay").await, 2);
    let none = send(
        &app,
        Method::POST,
        "/v1/jobs/retry",
        Some(json!({"state": "pending"})),
        &as_admin,
    )
    .await;
    assert_eq!(none.body["affected"], 0, "pending jobs are not retried");

    let cancelled = send(
        &app,
        Method::POST,
        "/v1/jobs/cancel",
        Some(json!({"state": "pending"})),
        &as_admin,
    )
    .await;
    assert_eq!(
        cancelled.body["affected"], 3,
        "both retried pay jobs and the mail job"
    );
    assert_eq!(count("state=cancelled").await, 3);
    let typo = send(
        &app,
        Method::POST,
        "/v1/jobs/cancel",
        Some(json!({"stat": "pending"})),
        &as_admin,
    )
    .await;
    assert_eq!(
        typo.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        typo.body
    );
}

/// The sampler counts the unfinished jobs and the newly finished ones each time, adding the
/// latter to what it holds: the sums stay right across refreshes, and a retry (which moves a
/// job out of a finished state) makes the next count a full one.
#[tokio::test]
async fn sampled_counts_stay_exact_across_incremental_refreshes() {
    let (app, state) = app_with(Config {
        queue_stats_max_age: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let store = state.store();
    for n in 0..4 {
        store
            .enqueue(NewJob::new("k", json!({ "n": n })))
            .await
            .unwrap();
    }
    store
        .enqueue(NewJob::new("k", json!({})).queue("other"))
        .await
        .unwrap();
    let counts = |q: &str| {
        let state = state.clone();
        let q = q.to_owned();
        async move {
            let sample = state.sampler().sample().await.unwrap();
            sample
                .queues
                .iter()
                .find(|s| s.queue == q)
                .map(|s| s.counts)
                .unwrap_or_default()
        }
    };
    assert_eq!(
        counts("default").await.pending,
        4,
        "the first count is a full one"
    );
    let finish = |queue: &'static str, dead: bool| {
        let store = store.clone();
        async move {
            let job = store
                .claim(&Claim::new("w", 1).queues([queue]))
                .await
                .unwrap()
                .remove(0);
            if dead {
                store.dead(job.lease().unwrap(), "boom").await.unwrap();
            } else {
                store.complete(job.lease().unwrap(), None).await.unwrap();
            }
            job.id
        }
    };
    finish("default", false).await;
    let c = counts("default").await;
    assert_eq!((c.pending, c.succeeded), (3, 1));
    finish("default", false).await;
    let dead = finish("default", true).await;
    finish("other", false).await;
    let c = counts("default").await;
    assert_eq!(
        (c.pending, c.succeeded, c.dead),
        (1, 2, 1),
        "added, not recounted"
    );
    assert_eq!(
        counts("other").await.succeeded,
        1,
        "a queue with only finished jobs"
    );
    assert_eq!(
        counts("default").await.succeeded,
        2,
        "nothing counted twice"
    );

    let retried = post(&app, &format!("/v1/jobs/{}/retry", dead.0), json!({})).await;
    assert_eq!(retried.status, StatusCode::OK);
    let c = counts("default").await;
    assert_eq!(
        (c.pending, c.dead),
        (2, 0),
        "a retry makes the next count a full one"
    );
}

/// HTTP workers skip paused groups too (a disabled webhook destination's jobs wait for them as
/// for the server's own worker).
#[tokio::test]
async fn http_claims_skip_paused_groups() {
    let (app, state) = test_app().await;
    state
        .store()
        .pause_group("held", "maintenance")
        .await
        .unwrap();
    let held = post(
        &app,
        "/v1/jobs",
        json!({"kind": "call", "payload": {}, "metadata": {"group": "held"}}),
    )
    .await;
    let held = held.body["id"].as_i64().unwrap();
    let free = enqueue(&app, "call", json!({})).await;
    let claimed = crate::support::claim(&app, 10).await;
    let ids: Vec<i64> = claimed.iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [free], "the paused group's job waits");
    state.store().resume_group("held").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let claimed = crate::support::claim(&app, 10).await;
        if let Some(job) = claimed.first() {
            assert_eq!(job["id"].as_i64().unwrap(), held);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "claimed once resumed (within a second)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bulk_action_with_a_bad_payload_path_is_refused_before_it_starts() {
    let (app, _) = test_app().await;
    let bad = post(
        &app,
        "/v1/jobs/retry",
        json!({"state": "pending", "path": "a..b", "value": "1"}),
    )
    .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
    );
}

/// The page acts with the viewer's token (bulk retry and cancel), so it must never be framed,
/// and runs only the server's own scripts; no answer may be sniffed into another type; every
/// answer names its request (the client's id if it sent one).
#[tokio::test]
async fn the_page_cannot_be_framed_and_every_answer_is_marked() {
    let (app, _) = test_app().await;
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "frame-ancestors 'none'",
        "script-src 'self'",
        "default-src 'self'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    assert_eq!(page.headers["x-frame-options"], "DENY");
    for path in ["/", "/assets/js/main.js", "/v1/queues", "/v1/nothing-here"] {
        let a = get(&app, path).await;
        assert_eq!(a.headers["x-content-type-options"], "nosniff", "{path}");
        let id = a.headers["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 16, "{path}: {id}");
    }
    let echoed = send(
        &app,
        Method::GET,
        "/v1/queues",
        None,
        &[("x-request-id", "trace-42")],
    )
    .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-42");
    // An id that cannot be a header value on a log line is replaced.
    let long = "x".repeat(200);
    let replaced = send(
        &app,
        Method::GET,
        "/v1/queues",
        None,
        &[("x-request-id", &long)],
    )
    .await;
    assert_ne!(replaced.headers["x-request-id"], long.as_str());
}
