//! The HTTP API through `app()` with `oneshot` (no socket): every route, every error case,
//! tokens on every route, long polls, overload.

mod batch_reports;
mod body_deadline;
mod document;
mod held_jobs;
mod json_bodies;
mod limits;
mod own_bounds;

use std::time::{Duration, Instant};

use crate::support::{app_with, claim, enqueue, get, post, send, test_app};
use axum::http::{Method, StatusCode};
use floodgate_server::config::Config;
use serde_json::{Value, json};

#[tokio::test]
async fn enqueue_answers_202_with_a_location_to_poll() {
    let (app, _) = test_app().await;
    let a = post(
        &app,
        "/v1/jobs",
        json!({"kind": "email", "payload": {"to": "ada"}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.headers["location"], "/v1/jobs/1");
    assert_eq!(a.body["state"], "pending");
    let job = get(&app, "/v1/jobs/1").await;
    assert_eq!(job.status, StatusCode::OK);
    assert_eq!(job.body["payload"]["to"], "ada");
    assert_eq!(job.body["state"], "pending");
    assert!(
        job.headers.contains_key("retry-after"),
        "not finished: poll again"
    );
    let later = post(
        &app,
        "/v1/jobs",
        json!({"kind": "k", "run_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(later.body["state"], "scheduled");
}

#[tokio::test]
async fn a_batch_is_one_transaction_with_one_answer_per_job() {
    let (app, _) = app_with(Config {
        max_batch: 3,
        ..Config::default()
    })
    .await;
    let jobs: Vec<Value> = (0..3).map(|n| json!({"kind": "k", "payload": n})).collect();
    let a = post(&app, "/v1/jobs", json!({ "jobs": jobs })).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let ids: Vec<i64> = a.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let too_many: Vec<Value> = (0..4).map(|n| json!({"kind": "k", "payload": n})).collect();
    let a = post(&app, "/v1/jobs", json!({ "jobs": too_many })).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.code(), "VALIDATION_FAILED");
    // One bad job refuses the batch, naming it; nothing is written.
    let a = post(
        &app,
        "/v1/jobs",
        json!({"jobs": [{"kind": "k"}, {"kind": "k", "priority": 0}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("jobs[1].priority"),
        "{:?}",
        a.body
    );
    assert_eq!(get(&app, "/v1/jobs/4").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idempotency_key_repeats_return_the_original_and_a_changed_body_is_refused() {
    let (app, _) = test_app().await;
    let body = json!({"kind": "charge", "payload": {"cents": 500}});
    let key = [("idempotency-key", "charge-42")];
    let first = send(&app, Method::POST, "/v1/jobs", Some(body.clone()), &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = send(&app, Method::POST, "/v1/jobs", Some(body), &key).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.headers["location"], first.headers["location"]);
    let changed = json!({"kind": "charge", "payload": {"cents": 900}});
    let reused = send(&app, Method::POST, "/v1/jobs", Some(changed), &key).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_of_one_key_make_one_job() {
    let (app, _) = test_app().await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let body = json!({"kind": "k", "payload": 1});
                send(
                    &app,
                    Method::POST,
                    "/v1/jobs",
                    Some(body),
                    &[("idempotency-key", "one")],
                )
                .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for c in calls {
        let a = c.await.unwrap();
        assert!(a.status.is_success(), "{:?}", a.body);
        created += usize::from(a.status == StatusCode::ACCEPTED);
        ids.push(a.body["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1, "exactly one request created the job");
    assert!(ids.iter().all(|&id| id == ids[0]));
}

/// One request per error case: a 4xx problem document with its code, never a 5xx.
#[tokio::test]
async fn bad_requests_get_a_problem_with_a_stable_code() {
    let (app, _) = app_with(Config {
        max_payload_bytes: 1_000,
        max_body_bytes: 4_096,
        ..Config::default()
    })
    .await;
    let bad_json = crate::support::raw(
        &app,
        axum::http::Request::post("/v1/jobs")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{\"kind\": "))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (bad_json.status.as_u16(), bad_json.code()),
        (400, "MALFORMED_JSON")
    );
    let no_type = crate::support::raw(
        &app,
        axum::http::Request::post("/v1/jobs")
            .body(axum::body::Body::from("{\"kind\": \"k\"}"))
            .unwrap(),
    )
    .await;
    assert_eq!(no_type.status, StatusCode::BAD_REQUEST);
    let cases = [
        (
            json!({"kind": "k", "priority": "high"}),
            422,
            "VALIDATION_FAILED",
            "priority",
        ),
        (json!({"payload": 1}), 422, "VALIDATION_FAILED", "kind"),
        (
            json!({"kind": "k", "colour": "red"}),
            422,
            "VALIDATION_FAILED",
            "colour",
        ),
        (
            json!({"kind": "k", "priority": 11}),
            422,
            "VALIDATION_FAILED",
            "priority",
        ),
        (
            json!({"kind": "k", "run_at": "tomorrow"}),
            422,
            "VALIDATION_FAILED",
            "run_at",
        ),
        (
            json!({"kind": "k".repeat(300)}),
            422,
            "VALIDATION_FAILED",
            "kind",
        ),
        (
            json!({"kind": "k", "queue": ""}),
            422,
            "VALIDATION_FAILED",
            "queue",
        ),
        (
            json!({"kind": "k", "max_attempts": 0}),
            422,
            "VALIDATION_FAILED",
            "max_attempts",
        ),
        (
            json!({"kind": "k", "metadata": [1]}),
            422,
            "VALIDATION_FAILED",
            "metadata",
        ),
        (
            json!({"kind": "k", "payload": "x".repeat(1_500)}),
            413,
            "PAYLOAD_TOO_LARGE",
            "limit",
        ),
        (
            json!({"kind": "k", "payload": "x".repeat(5_000)}),
            413,
            "PAYLOAD_TOO_LARGE",
            "body",
        ),
        (
            json!({"kind": "k", "payload": {"s": "a\u{0}b"}}),
            422,
            "VALIDATION_FAILED",
            "NUL",
        ),
        (
            json!({"jobs": "all of them"}),
            422,
            "VALIDATION_FAILED",
            "jobs",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let a = post(&app, "/v1/jobs", body.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {:?}", a.body);
        assert_eq!(a.code(), code, "{body}");
        let detail = a.body["detail"].as_str().unwrap();
        assert!(detail.contains(mentions), "{body}: {detail}");
    }
    // Deeper than any reader decodes: refused at the door.
    let deep = format!(
        "{{\"kind\": \"k\", \"payload\": {}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let a = crate::support::raw(
        &app,
        axum::http::Request::post("/v1/jobs")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(deep))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (400, "MALFORMED_JSON"),
        "{:?}",
        a.body
    );
    let a = get(&app, "/v1/jobs/999").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "NOT_FOUND"));
    let a = get(&app, "/v1/jobs/abc").await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "VALIDATION_FAILED"));
    let a = get(&app, "/v1/nothing/here").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "NOT_FOUND"));
    let a = send(&app, Method::DELETE, "/v1/jobs", None, &[]).await;
    assert_eq!((a.status.as_u16(), a.code()), (405, "METHOD_NOT_ALLOWED"));
    let a = get(&app, "/v1/jobs?state=finished").await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "VALIDATION_FAILED"));
    let a = get(&app, "/v1/jobs?limit=5000").await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "VALIDATION_FAILED"));
    // A well-formed job with an empty key: the key's own check answers.
    let a = send(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "k", "payload": 1})),
        &[("idempotency-key", "")],
    )
    .await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (422, "VALIDATION_FAILED"),
        "{:?}",
        a.body
    );
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Idempotency-Key:"),
        "{:?}",
        a.body
    );
    let listed = get(&app, "/v1/jobs").await;
    assert_eq!(listed.body["jobs"], json!([]), "nothing was enqueued");
}

#[tokio::test]
async fn lists_page_by_keyset_and_filter() {
    let (app, _) = test_app().await;
    for n in 0..5 {
        enqueue(&app, if n % 2 == 0 { "even" } else { "odd" }, json!(n)).await;
    }
    let page = get(&app, "/v1/jobs?limit=2").await;
    let ids: Vec<i64> = page.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [5, 4]);
    let next = page.body["next"].as_i64().unwrap();
    let page = get(&app, &format!("/v1/jobs?limit=2&cursor={next}")).await;
    let ids: Vec<i64> = page.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2]);
    let odd = get(&app, "/v1/jobs?kind=odd&state=pending").await;
    assert_eq!(odd.body["jobs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn cancel_and_retry_follow_the_job_states() {
    let (app, _) = test_app().await;
    let id = enqueue(&app, "k", json!(1)).await;
    let a = post(&app, &format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "INVALID_STATE"));
    let a = post(&app, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(a.body["state"], "cancelled");
    let a = post(&app, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "cancelling twice is not an error");
    let a = post(&app, &format!("/v1/jobs/{id}/retry"), json!({})).await;
    assert_eq!(a.body["state"], "pending");
    assert_eq!(
        get(&app, &format!("/v1/jobs/{id}")).await.body["state"],
        "pending"
    );
    let a = post(&app, "/v1/jobs/999/cancel", json!({})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// Counts come from a sample at most `queue_stats_max_age` old: a stale one is answered at
/// once and refreshed behind it.
#[tokio::test]
async fn queue_counts_are_sampled() {
    let (app, _) = app_with(Config {
        queue_stats_max_age: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    enqueue(&app, "k", json!(1)).await;
    let first = get(&app, "/v1/queues").await;
    assert_eq!(first.body["queues"][0]["counts"]["pending"], 1);
    assert!(first.body["sampled_at"].is_string());
    enqueue(&app, "k", json!(2)).await;
    let cached = get(&app, "/v1/queues").await;
    assert_eq!(
        cached.body["queues"][0]["counts"]["pending"], 1,
        "the sample is reused"
    );
    assert_eq!(cached.body["sampled_at"], first.body["sampled_at"]);
    let (fresh_app, _) = app_with(Config {
        queue_stats_max_age: Duration::ZERO,
        ..Config::default()
    })
    .await;
    enqueue(&fresh_app, "k", json!(1)).await;
    get(&fresh_app, "/v1/queues").await;
    enqueue(&fresh_app, "k", json!(2)).await;
    let fresh = get(&fresh_app, "/v1/queues").await;
    assert_eq!(
        fresh.body["queues"][0]["counts"]["pending"], 2,
        "max age 0 counts every time"
    );
}

#[tokio::test]
async fn queues_count_and_pause() {
    let (app, _) = test_app().await;
    enqueue(&app, "k", json!(1)).await;
    enqueue(&app, "k", json!(2)).await;
    let q = get(&app, "/v1/queues").await;
    assert_eq!(q.body["queues"][0]["queue"], "default");
    assert_eq!(q.body["queues"][0]["counts"]["pending"], 2);
    let a = post(&app, "/v1/queues/default/pause", json!({})).await;
    assert_eq!(a.body["paused"], true);
    assert!(
        claim(&app, 10).await.is_empty(),
        "a paused queue is not claimed"
    );
    post(&app, "/v1/queues/default/resume", json!({})).await;
    assert_eq!(claim(&app, 10).await.len(), 2);
    assert_eq!(
        get(&app, "/v1/queues").await.body["queues"][0]["counts"]["running"],
        2
    );
}

#[tokio::test]
async fn http_workers_are_fenced_by_the_lease_token() {
    let (app, state) = test_app().await;
    let a = enqueue(&app, "k", json!("a")).await;
    let b = enqueue(&app, "k", json!("b")).await;
    let c = enqueue(&app, "k", json!("c")).await;
    let d = enqueue(&app, "k", json!("d")).await;
    let jobs = claim(&app, 4).await;
    assert_eq!(jobs.len(), 4);
    assert_eq!(state.leases().len(), 4);
    let token = |id: i64| {
        jobs.iter().find(|j| j["id"] == id).unwrap()["lease_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(jobs[0]["state"], "running");
    let hb = post(
        &app,
        &format!("/v1/jobs/{a}/heartbeat"),
        json!({"lease_token": token(a), "lease_ttl": 60}),
    )
    .await;
    assert_eq!(hb.body["cancel_requested"], false, "{:?}", hb.body);
    // A wrong worker name is a validation error, not a lost lease; the lease still holds.
    let wrong = post(
        &app,
        &format!("/v1/jobs/{a}/heartbeat"),
        json!({"lease_token": token(a), "worker": "someone-else"}),
    )
    .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (422, "VALIDATION_FAILED")
    );
    assert_eq!(state.leases().len(), 4);
    let named = post(
        &app,
        &format!("/v1/jobs/{a}/heartbeat"),
        json!({"lease_token": token(a), "worker": "w"}),
    )
    .await;
    assert_eq!(named.status, StatusCode::OK, "{:?}", named.body);
    let done = post(
        &app,
        &format!("/v1/jobs/{a}/complete"),
        json!({"lease_token": token(a), "result": {"ok": 1}}),
    )
    .await;
    assert_eq!(done.body["state"], "succeeded");
    let job = get(&app, &format!("/v1/jobs/{a}")).await;
    assert_eq!(job.body["result"]["ok"], 1);
    assert!(
        !job.headers.contains_key("retry-after"),
        "finished: nothing to poll"
    );
    // The same token again, and a forged one: LEASE_LOST, nothing written.
    let again = post(
        &app,
        &format!("/v1/jobs/{a}/complete"),
        json!({"lease_token": token(a)}),
    )
    .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "LEASE_LOST"));
    let forged = post(
        &app,
        &format!("/v1/jobs/{b}/complete"),
        json!({"lease_token": "12345"}),
    )
    .await;
    assert_eq!((forged.status.as_u16(), forged.code()), (409, "LEASE_LOST"));
    let garbage = post(
        &app,
        &format!("/v1/jobs/{b}/complete"),
        json!({"lease_token": "xyz"}),
    )
    .await;
    assert_eq!(
        (garbage.status.as_u16(), garbage.code()),
        (422, "VALIDATION_FAILED")
    );
    assert_eq!(
        get(&app, &format!("/v1/jobs/{b}")).await.body["state"],
        "running"
    );
    let failed = post(
        &app,
        &format!("/v1/jobs/{b}/fail"),
        json!({"lease_token": token(b), "error": "smtp down", "retry_in": 3600}),
    )
    .await;
    assert_eq!(failed.body["state"], "failed_will_retry");
    let job = get(&app, &format!("/v1/jobs/{b}")).await;
    assert_eq!(job.body["state"], "failed_will_retry");
    assert_eq!(job.body["last_error"], "smtp down");
    let dead = post(
        &app,
        &format!("/v1/jobs/{c}/fail"),
        json!({"lease_token": token(c), "error": "bad address", "permanent": true}),
    )
    .await;
    assert_eq!(dead.body["state"], "dead");
    let snoozed = post(
        &app,
        &format!("/v1/jobs/{d}/snooze"),
        json!({"lease_token": token(d), "delay": 3600}),
    )
    .await;
    assert_eq!(snoozed.body["state"], "scheduled");
    assert_eq!(state.leases().len(), 0, "every report closes its lease");
    let hb = post(
        &app,
        &format!("/v1/jobs/{d}/heartbeat"),
        json!({"lease_token": token(d)}),
    )
    .await;
    assert_eq!((hb.status.as_u16(), hb.code()), (409, "LEASE_LOST"));
    let bad = post(
        &app,
        "/v1/queues/default/claim",
        json!({"worker": "w", "limit": 0}),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (422, "VALIDATION_FAILED")
    );
    let bad = post(
        &app,
        "/v1/queues/default/claim",
        json!({"worker": "w", "wait": 31}),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (422, "VALIDATION_FAILED")
    );
}

#[tokio::test]
async fn a_cancel_reaches_the_http_worker_at_its_heartbeat() {
    let (app, _) = test_app().await;
    let id = enqueue(&app, "k", json!(1)).await;
    let token = claim(&app, 1).await[0]["lease_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = post(&app, &format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(a.body["state"], "running");
    let hb = post(
        &app,
        &format!("/v1/jobs/{id}/heartbeat"),
        json!({"lease_token": token}),
    )
    .await;
    assert_eq!(hb.body["cancel_requested"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_as_soon_as_a_job_arrives() {
    let (app, state) = test_app().await;
    let free = state.long_polls().available();
    let started = Instant::now();
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move {
            post(
                &app,
                "/v1/queues/default/claim",
                json!({"worker": "w", "wait": 20}),
            )
            .await
        })
    };
    // Enqueue once the claim holds its long-poll slot (waiting, or about to).
    crate::support::eventually("the claim is long-polling", Duration::from_secs(10), || {
        let available = state.long_polls().available();
        async move {
            if available < free {
                Ok(())
            } else {
                Err(available)
            }
        }
    })
    .await;
    let id = enqueue(&app, "k", json!(1)).await;
    let a = waiter.await.unwrap();
    assert_eq!(a.body["jobs"][0]["id"], id, "{:?}", a.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not timed out: {:?}",
        started.elapsed()
    );
    // Nothing to wait for: an empty answer after the wait.
    let started = Instant::now();
    let a = post(
        &app,
        "/v1/queues/default/claim",
        json!({"worker": "w", "wait": 1}),
    )
    .await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 0);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_503_with_retry_after() {
    let (app, state) = app_with(Config {
        max_concurrent_requests: 1,
        ..Config::default()
    })
    .await;
    // The one slot taken (by a request in flight; a long poll no longer takes one).
    let slot = state.requests().try_acquire().unwrap();
    let a = get(&app, "/v1/queues").await;
    assert_eq!((a.status.as_u16(), a.code()), (503, "OVERLOADED"));
    assert_eq!(a.headers["retry-after"], "1");
    let a = post(&app, "/v1/queues/default/claim", json!({"worker": "w"})).await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (503, "OVERLOADED"),
        "a claim that does not wait is an ordinary request"
    );
    assert_eq!(get(&app, "/health/live").await.status, StatusCode::OK);
    drop(slot);
    assert_eq!(get(&app, "/v1/queues").await.status, StatusCode::OK);
}

/// Every route in the OpenAPI document is refused without a token when tokens are set (but
/// health and the document itself); the read-only token opens GETs only. A route added later
/// is in the document (it is generated from the handlers), so it is checked too.
#[tokio::test]
async fn tokens_guard_every_route() {
    let admin = "admin-token-0123456789";
    let reader = "reader-token-0123456789";
    let (app, _) = app_with(Config {
        api_token: Some(admin.into()),
        read_only_token: Some(reader.into()),
        ..Config::default()
    })
    .await;
    let doc = get(&app, "/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    // Exactly the API's routes: a route added or lost shows here first.
    let expected = [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/v1/breakers",
        "/v1/breakers/{name}/calls",
        "/v1/breakers/{name}/calls/{call_id}",
        "/v1/breakers/{name}/reset",
        "/v1/dashboard",
        "/v1/dashboard/events",
        "/v1/failures",
        "/v1/jobs",
        "/v1/jobs/cancel",
        "/v1/jobs/complete",
        "/v1/jobs/count",
        "/v1/jobs/heartbeat",
        "/v1/jobs/retry",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/complete",
        "/v1/jobs/{id}/fail",
        "/v1/jobs/{id}/heartbeat",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/{id}/snooze",
        "/v1/limiters",
        "/v1/limiters/{name}",
        "/v1/limiters/{name}/permits",
        "/v1/permits/{id}",
        "/v1/permits/{id}/heartbeat",
        "/v1/queues",
        "/v1/queues/{queue}/claim",
        "/v1/queues/{queue}/pause",
        "/v1/queues/{queue}/resume",
        "/v1/rate-limits",
        "/v1/rate-limits/{name}/check",
        "/v1/webhooks/destinations",
        "/v1/webhooks/destinations/{destination}/enable",
    ];
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(listed, expected);
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{queue}", "default")
            .replace("{destination}", "example.com")
            .replace("{name}", "x")
            .replace("{call_id}", "c");
        for method in ops.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let public = floodgate_server::api::PUBLIC_PATHS.contains(&path.as_str());
            let body = (method == Method::POST).then(|| json!({}));
            let none = send(&app, method.clone(), &concrete, body.clone(), &[]).await;
            if public {
                assert_ne!(
                    none.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} is public"
                );
                continue;
            }
            assert_eq!(
                none.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token"
            );
            let wrong = send(
                &app,
                method.clone(),
                &concrete,
                body.clone(),
                &[("authorization", "Bearer nope")],
            )
            .await;
            assert_eq!(
                wrong.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a wrong token"
            );
            let read = format!("Bearer {reader}");
            let as_reader = send(
                &app,
                method.clone(),
                &concrete,
                body.clone(),
                &[("authorization", &read)],
            )
            .await;
            if method == Method::GET {
                assert!(
                    ![401, 403].contains(&as_reader.status.as_u16()),
                    "{method} {path} as reader"
                );
            } else {
                assert_eq!(
                    as_reader.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as reader"
                );
            }
            let full = format!("Bearer {admin}");
            let as_admin = send(
                &app,
                method.clone(),
                &concrete,
                body,
                &[("authorization", &full)],
            )
            .await;
            assert!(
                ![401, 403].contains(&as_admin.status.as_u16()),
                "{method} {path} as admin"
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "checked {checked} routes");
}

#[tokio::test]
async fn health_metrics_and_the_openapi_document() {
    let (app, _) = test_app().await;
    let live = get(&app, "/health/live").await;
    assert_eq!(
        (live.status.as_u16(), &live.body["status"]),
        (200, &json!("ok"))
    );
    let ready = get(&app, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    assert_eq!(ready.body["backend"], "sqlite");
    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let doc = get(&app, "/openapi.json").await.body;
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/queues/{queue}/claim",
        "/v1/jobs/{id}/complete",
        "/health/ready",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Problem",
        "JobRequest",
        "JobView",
        "ClaimRequest",
        "BatchRequest",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
}
