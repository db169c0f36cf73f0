//! Limits as a service through `app()`: permits (bound, priorities, queue bound, leases,
//! heartbeats, late releases, a waiter that goes away, a run-time limit), rate checks with
//! the IETF fields, and breakers (probes across callers, unreported calls, reset). The fleet
//! (Redis, two processes) is in `process::fleet_limits`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use floodgate_server::config::Config;
use floodgate_server::limits::config::{BreakerSpec, LimiterSpec, RateLimitSpec};
use serde_json::{Value, json};

use crate::support::{Answer, app_with, eventually, get, post, send};

fn limiter(max_concurrency: usize, max_queue: usize, lease_ttl: f64) -> Config {
    let spec = LimiterSpec {
        max_concurrency,
        max_queue,
        lease_ttl,
        ..LimiterSpec::default()
    };
    Config {
        limiters: BTreeMap::from([("llm".to_owned(), spec)]),
        ..Config::default()
    }
}

async fn acquire(app: &Router, body: Value) -> Answer {
    post(app, "/v1/limiters/llm/permits", body).await
}

async fn limiter_view(app: &Router) -> Value {
    get(app, "/v1/limiters").await.body["limiters"][0].clone()
}

async fn waiting(app: &Router, n: u64) {
    eventually("waiters queued", Duration::from_secs(10), || async {
        let view = limiter_view(app).await;
        if view["waiting"] == n {
            Ok(())
        } else {
            Err(view)
        }
    })
    .await;
}

fn id(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["permit_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn permits_are_bounded_and_waiters_served_by_priority() {
    let (app, _) = app_with(limiter(2, 3, 30.0)).await;
    let a = acquire(&app, json!({})).await;
    let a = id(&a);
    let b = acquire(&app, json!({"priority": 2})).await;
    assert_eq!(
        b.headers["location"],
        format!("/v1/permits/{}", b.body["permit_id"].as_str().unwrap())
    );
    assert_eq!(b.body["scope"], "local");
    assert_eq!(b.body["enforced"], true);
    let b = id(&b);
    // Full: no wait answers at once.
    let none = acquire(&app, json!({})).await;
    assert_eq!(none.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(none.code(), "ACQUIRE_TIMEOUT");
    assert_eq!(none.headers["retry-after"], "1");
    // Three waiters, queued one after the other, lowest priority first.
    let mut waiters = Vec::new();
    for (n, priority) in [1, 9, 5].into_iter().enumerate() {
        let client = app.clone();
        waiters.push(tokio::spawn(async move {
            let answer = acquire(&client, json!({"priority": priority, "wait": 20})).await;
            (priority, id(&answer))
        }));
        waiting(&app, n as u64 + 1).await;
    }
    // The queue holds three: a fourth is refused at once.
    let full = acquire(&app, json!({"wait": 5})).await;
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(full.code(), "QUEUE_FULL");
    // Each release serves the best waiter.
    let mut served = Vec::new();
    let mut held = vec![a, b];
    for _ in 0..3 {
        let permit = held.pop().unwrap();
        let released = send(
            &app,
            Method::DELETE,
            &format!("/v1/permits/{permit}"),
            None,
            &[],
        )
        .await;
        assert_eq!(released.status, StatusCode::NO_CONTENT);
        let before = served.len();
        let pending = &waiters;
        let next = eventually("a waiter served", Duration::from_secs(10), || async move {
            pending.iter().position(|w| w.is_finished()).ok_or(before)
        })
        .await;
        let (priority, permit) = waiters.remove(next).await.unwrap();
        served.push(priority);
        held.push(permit);
    }
    assert_eq!(served, vec![9, 5, 1]);
    let view = limiter_view(&app).await;
    assert_eq!(view["held_here"], 2, "{view}");
    assert_eq!(view["queue_full"], 1, "{view}");
    // Out of range.
    let bad = acquire(&app, json!({"priority": 11})).await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    let long = acquire(&app, json!({"wait": 301})).await;
    assert_eq!(long.code(), "VALIDATION_FAILED");
    assert!(
        long.body["detail"].as_str().unwrap().contains("300"),
        "{:?}",
        long.body
    );
    let unknown = post(&app, "/v1/limiters/nope/permits", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("llm"),
        "{:?}",
        unknown.body
    );
}

#[tokio::test]
async fn a_permit_not_heard_from_is_taken_back_once() {
    let (app, _) = app_with(limiter(1, 10, 1.0)).await;
    let lost = id(&acquire(&app, json!({})).await);
    eventually("the lease runs out", Duration::from_secs(10), || async {
        let view = limiter_view(&app).await;
        if view["expired"] == 1 && view["held_here"] == 0 {
            Ok(())
        } else {
            Err(view)
        }
    })
    .await;
    let second = id(&acquire(&app, json!({})).await);
    // The late holder's release and heartbeat say it was lost, and free nothing.
    let late = send(
        &app,
        Method::DELETE,
        &format!("/v1/permits/{lost}"),
        None,
        &[],
    )
    .await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "PERMIT_LOST");
    let beat = post(&app, &format!("/v1/permits/{lost}/heartbeat"), json!({})).await;
    assert_eq!(beat.code(), "PERMIT_LOST");
    let third = acquire(&app, json!({})).await;
    assert_eq!(
        third.code(),
        "ACQUIRE_TIMEOUT",
        "the late release freed a second slot"
    );
    // Released twice: both 204. An id never given: 404.
    for _ in 0..2 {
        let done = send(
            &app,
            Method::DELETE,
            &format!("/v1/permits/{second}"),
            None,
            &[],
        )
        .await;
        assert_eq!(done.status, StatusCode::NO_CONTENT);
    }
    let never = send(&app, Method::DELETE, "/v1/permits/0123", None, &[]).await;
    assert_eq!(never.code(), "NOT_FOUND");
}

#[tokio::test]
async fn heartbeats_keep_a_permit() {
    let (app, _) = app_with(limiter(1, 10, 1.0)).await;
    let permit = id(&acquire(&app, json!({})).await);
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2_500) {
        // No body: the permit's own lease.
        let beat = send(
            &app,
            Method::POST,
            &format!("/v1/permits/{permit}/heartbeat"),
            None,
            &[],
        )
        .await;
        assert_eq!(beat.status, StatusCode::OK, "{:?}", beat.body);
        assert_eq!(beat.body["permit_id"], permit.as_str());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A longer lease on request.
    let beat = post(
        &app,
        &format!("/v1/permits/{permit}/heartbeat"),
        json!({"lease_ttl": 5}),
    )
    .await;
    let until =
        chrono::DateTime::parse_from_rfc3339(beat.body["lease_expires_at"].as_str().unwrap())
            .unwrap();
    let ahead = until
        .signed_duration_since(chrono::Utc::now())
        .num_milliseconds();
    assert!((3_000..=5_000).contains(&ahead), "{ahead} ms");
    assert_eq!(limiter_view(&app).await["expired"], 0);
    let done = send(
        &app,
        Method::DELETE,
        &format!("/v1/permits/{permit}"),
        None,
        &[],
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_waiter_that_goes_away_leaves_no_permit() {
    let (app, _) = app_with(limiter(1, 10, 30.0)).await;
    let held = id(&acquire(&app, json!({})).await);
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { acquire(&app, json!({"wait": 20})).await }
    });
    waiting(&app, 1).await;
    // The client disconnects: its request's future is dropped mid-wait.
    waiter.abort();
    match waiter.await {
        Err(e) => assert!(e.is_cancelled()),
        Ok(a) => panic!("the waiter was answered: {:?}", a.body),
    }
    waiting(&app, 0).await;
    let done = send(
        &app,
        Method::DELETE,
        &format!("/v1/permits/{held}"),
        None,
        &[],
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT);
    let next = id(&acquire(&app, json!({})).await);
    let view = limiter_view(&app).await;
    assert_eq!(view["held_here"], 1, "{view}");
    assert_eq!(
        view["acquired"], 2,
        "the vanished waiter never got one: {view}"
    );
    let _ = next;
}

#[tokio::test]
async fn a_limit_changes_at_run_time() {
    let (app, _) = app_with(limiter(1, 10, 30.0)).await;
    let changed = send(
        &app,
        Method::PUT,
        "/v1/limiters/llm",
        Some(json!({"max_concurrency": 3})),
        &[],
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["limit"], 3);
    for _ in 0..3 {
        id(&acquire(&app, json!({})).await);
    }
    assert_eq!(acquire(&app, json!({})).await.code(), "ACQUIRE_TIMEOUT");
    let zero = send(
        &app,
        Method::PUT,
        "/v1/limiters/llm",
        Some(json!({"max_concurrency": 0})),
        &[],
    )
    .await;
    assert_eq!(zero.code(), "VALIDATION_FAILED");
}

fn rate_config() -> Config {
    let spec = RateLimitSpec {
        rate: 3,
        per: 60.0,
        ..RateLimitSpec::default()
    };
    Config {
        rate_limits: BTreeMap::from([("per_customer".to_owned(), spec)]),
        ..Config::default()
    }
}

#[tokio::test]
async fn rate_checks_answer_with_the_ietf_fields() {
    let (app, _) = app_with(rate_config()).await;
    let check = |key: &'static str, cost: u32| {
        let app = app.clone();
        async move {
            post(
                &app,
                "/v1/rate-limits/per_customer/check",
                json!({"key": key, "cost": cost}),
            )
            .await
        }
    };
    for (n, remaining) in [2, 1, 0].into_iter().enumerate() {
        let a = check("c-1", 1).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        assert_eq!(a.body["allowed"], true);
        assert_eq!(a.body["remaining"], remaining);
        assert_eq!(a.headers["ratelimit-policy"], "\"per_customer\";q=3;w=60");
        // Each cell takes 20 s to come back: full again after 20 s per cell taken.
        assert_eq!(
            a.headers["ratelimit"],
            format!("\"per_customer\";r={remaining};t={}", 20 * (n + 1))
        );
    }
    let refused = check("c-1", 1).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "RATE_LIMITED");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    assert_eq!(
        refused.headers["ratelimit-policy"],
        "\"per_customer\";q=3;w=60"
    );
    assert_eq!(refused.headers["ratelimit"], "\"per_customer\";r=0;t=60");
    // Another key has its own bucket; a cost is taken at once; more than the burst never can be.
    let other = check("c-2", 2).await;
    assert_eq!(other.body["remaining"], 1);
    let never = check("c-3", 4).await;
    assert_eq!(never.code(), "VALIDATION_FAILED");
    assert!(
        never.body["detail"].as_str().unwrap().contains("burst"),
        "{:?}",
        never.body
    );
    let unknown = post(&app, "/v1/rate-limits/nope/check", json!({"key": "a"})).await;
    assert_eq!(unknown.code(), "NOT_FOUND");
    let empty = post(
        &app,
        "/v1/rate-limits/per_customer/check",
        json!({"key": ""}),
    )
    .await;
    assert_eq!(empty.code(), "VALIDATION_FAILED");
    let listed = get(&app, "/v1/rate-limits").await.body["rate_limits"][0].clone();
    assert_eq!(listed["allowed"], 4, "{listed}");
    assert_eq!(listed["limited"], 1, "{listed}");
    assert_eq!(listed["keys"], 2, "{listed}");
}

fn breaker_config(spec: BreakerSpec) -> Config {
    Config {
        breakers: BTreeMap::from([("payments".to_owned(), spec)]),
        ..Config::default()
    }
}

async fn admit(app: &Router) -> Answer {
    send(app, Method::POST, "/v1/breakers/payments/calls", None, &[]).await
}

async fn report(app: &Router, call: &Value, outcome: &str) -> Answer {
    let id = call["call_id"].as_str().unwrap();
    post(
        app,
        &format!("/v1/breakers/payments/calls/{id}"),
        json!({"outcome": outcome, "duration_ms": 12.5, "error": "boom"}),
    )
    .await
}

#[tokio::test]
async fn half_open_admits_exactly_its_probes_across_callers() {
    let spec = BreakerSpec {
        consecutive_failures: Some(1),
        open_wait: 1.0,
        half_open_probes: 2,
        ..BreakerSpec::default()
    };
    let (app, _) = app_with(breaker_config(spec)).await;
    let call = admit(&app).await;
    assert_eq!(call.status, StatusCode::OK, "{:?}", call.body);
    assert_eq!(call.body["probe"], false);
    let after = report(&app, &call.body, "failure").await;
    assert_eq!(after.body["state"], "open");
    let refused = admit(&app).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "BREAKER_OPEN");
    assert_eq!(refused.headers["retry-after"], "1");
    // After the open wait, many callers at once: exactly two probes get through.
    let first = eventually("the open wait passes", Duration::from_secs(10), || async {
        let a = admit(&app).await;
        if a.status == StatusCode::OK {
            Ok(a.body)
        } else {
            Err(a.status)
        }
    })
    .await;
    assert_eq!(first["probe"], true);
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { admit(&app).await })
        })
        .collect();
    let mut probes = vec![first];
    for t in tries {
        let a = t.await.unwrap();
        match a.status {
            StatusCode::OK => probes.push(a.body),
            _ => assert_eq!(a.code(), "BREAKER_OPEN"),
        }
    }
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(
        report(&app, &probes[0], "success").await.body["state"],
        "half_open"
    );
    assert_eq!(
        report(&app, &probes[1], "success").await.body["state"],
        "closed"
    );
    // A call reported twice.
    let twice = report(&app, &probes[1], "success").await;
    assert_eq!(twice.code(), "CALL_EXPIRED");
    let listed = get(&app, "/v1/breakers").await.body["breakers"][0].clone();
    assert_eq!(listed["state"], "closed", "{listed}");
    assert_eq!(listed["last_failure"], "boom", "{listed}");
}

#[tokio::test]
async fn an_unreported_call_counts_as_failed_at_its_deadline() {
    let spec = BreakerSpec {
        consecutive_failures: Some(1),
        call_deadline: 1.0,
        ..BreakerSpec::default()
    };
    let (app, _) = app_with(breaker_config(spec)).await;
    let call = admit(&app).await.body;
    eventually(
        "the unreported call fails",
        Duration::from_secs(10),
        || async {
            let b = get(&app, "/v1/breakers").await.body["breakers"][0].clone();
            if b["state"] == "open" { Ok(()) } else { Err(b) }
        },
    )
    .await;
    let late = report(&app, &call, "success").await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "CALL_EXPIRED");
    assert!(
        late.body["detail"].as_str().unwrap().contains("deadline"),
        "{:?}",
        late.body
    );
    // Reset closes it; a call id through another name is unknown there.
    let reset = send(&app, Method::POST, "/v1/breakers/payments/reset", None, &[]).await;
    assert_eq!(reset.body["state"], "closed");
    let call = admit(&app).await.body;
    let id = call["call_id"].as_str().unwrap();
    let elsewhere = post(
        &app,
        &format!("/v1/breakers/other/calls/{id}"),
        json!({"outcome": "success"}),
    )
    .await;
    assert_eq!(elsewhere.code(), "NOT_FOUND");
    let bad = post(
        &app,
        &format!("/v1/breakers/payments/calls/{id}"),
        json!({"outcome": "meh"}),
    )
    .await;
    assert_eq!(bad.code(), "VALIDATION_FAILED");
}

#[tokio::test]
async fn a_slow_report_counts_as_slow() {
    let spec = BreakerSpec {
        slow_call: Some(0.5),
        slow_call_rate: 0.5,
        minimum_calls: 2,
        window: 2,
        ..BreakerSpec::default()
    };
    let (app, _) = app_with(breaker_config(spec)).await;
    for outcome in ["slow", "slow"] {
        let call = admit(&app).await.body;
        let id = call["call_id"].as_str().unwrap();
        // Reported at once, but measured by the caller as slow.
        let a = post(
            &app,
            &format!("/v1/breakers/payments/calls/{id}"),
            json!({"outcome": outcome, "duration_ms": 10}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    }
    let b = get(&app, "/v1/breakers").await.body["breakers"][0].clone();
    assert_eq!(b["slow"], 2, "{b}");
    assert_eq!(b["state"], "open", "{b}");
}

#[tokio::test]
async fn bad_limit_settings_name_their_key() {
    let mut config = limiter(0, 10, 30.0);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("limiters.llm.max_concurrency"), "{err}");
    config = limiter(1, 10, 0.0);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("limiters.llm.lease_ttl"), "{err}");
    let mut rates = rate_config();
    rates.rate_limits.get_mut("per_customer").unwrap().rate = 0;
    let err = rates.validate().unwrap_err().to_string();
    assert!(
        err.contains("rate_limits.per_customer") && err.contains("rate"),
        "{err}"
    );
    let breakers = breaker_config(BreakerSpec {
        failure_rate: 1.5,
        ..BreakerSpec::default()
    });
    let err = breakers.validate().unwrap_err().to_string();
    assert!(err.contains("breakers.payments"), "{err}");
    let named = Config {
        limiters: BTreeMap::from([(
            "no spaces".to_owned(),
            LimiterSpec {
                max_concurrency: 1,
                ..LimiterSpec::default()
            },
        )]),
        ..Config::default()
    };
    assert!(
        named
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 to 64")
    );
}

#[tokio::test]
async fn the_dashboard_shows_named_limiters_and_breakers() {
    let mut config = limiter(3, 10, 30.0);
    config.breakers = breaker_config(BreakerSpec::default()).breakers;
    let (app, _) = app_with(config).await;
    id(&acquire(&app, json!({})).await);
    let overview = get(&app, "/v1/dashboard").await;
    assert_eq!(overview.status, StatusCode::OK, "{:?}", overview.body);
    let limiters = overview.body["limiters"].as_array().unwrap();
    let llm = limiters.iter().find(|l| l["name"] == "limit:llm");
    let llm = llm.unwrap_or_else(|| panic!("{limiters:?}"));
    assert_eq!(
        (llm["active"].clone(), llm["limit"].clone()),
        (json!(1), json!(3))
    );
    let breakers = overview.body["breakers"].as_array().unwrap();
    let payments = breakers.iter().find(|b| b["name"] == "breaker:payments");
    assert_eq!(
        payments.unwrap_or_else(|| panic!("{breakers:?}"))["state"],
        "closed"
    );
}
