//! Long polls and event streams have bounds of their own and never take the capacity that
//! enqueues, status reads, completions and health checks need (before: a fleet of idle long
//! polls got every other request answered 503, `/health/live` included).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use floodgate_server::config::Config;
use serde_json::json;
use tower::ServiceExt;

use crate::support::{app_with, get, post};

/// Four request slots, eight long polls, two event streams; twelve workers long-poll an empty
/// queue and three dashboards open their streams. Eight polls wait, four answer at once with
/// nothing and `Retry-After`; two streams open, the third is refused with 503; and meanwhile a
/// health check, an enqueue, a status read, a claim without waiting and a completion each
/// answer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The machine lock is a process-wide std lock shared with the blocking process tests; this
// test's own runtime holds it throughout, and nothing else on that runtime takes it.
#[allow(clippy::await_holding_lock)]
async fn long_polls_and_streams_leave_room_for_everything_else() {
    // Measures latency: not beside the process tests' load. (Answers within 500 ms.)
    let _machine = crate::support::process::whole_machine();
    let (app, _) = app_with(Config {
        max_concurrent_requests: 4,
        max_long_polls: 8,
        max_event_streams: 2,
        ..Config::default()
    })
    .await;
    let mut polls = Vec::new();
    for n in 0..12 {
        let app = app.clone();
        polls.push(tokio::spawn(async move {
            let began = Instant::now();
            let a = post(
                &app,
                "/v1/queues/idle/claim",
                json!({"worker": format!("w{n}"), "limit": 1, "wait": 25}),
            )
            .await;
            (a, began.elapsed())
        }));
    }
    // The four the bound turns away answer at once; give them the time to.
    let mut early = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while early.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} polls answered early",
            early.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut waiting = Vec::new();
        for poll in polls.drain(..) {
            if poll.is_finished() {
                early.push(poll.await.unwrap());
            } else {
                waiting.push(poll);
            }
        }
        polls = waiting;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(polls.len(), 8, "eight long polls are waiting");
    assert!(polls.iter().all(|p| !p.is_finished()));
    for (a, took) in &early {
        assert_eq!(
            a.status,
            StatusCode::OK,
            "a busy long poll is no failure: {:?}",
            a.body
        );
        assert_eq!(a.body["jobs"], json!([]));
        assert_eq!(a.headers["retry-after"], "1");
        assert!(
            *took < Duration::from_secs(5),
            "answered at once, not after the wait"
        );
    }
    let mut streams = Vec::new();
    for _ in 0..3 {
        let request = Request::get("/v1/dashboard/events")
            .body(Body::empty())
            .unwrap();
        streams.push(app.clone().oneshot(request).await.unwrap());
    }
    let statuses: Vec<u16> = streams.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 503],
        "two streams open, the third is refused"
    );
    assert!(streams[2].headers().contains_key("retry-after"));

    let quick = |took: Duration, what: &str| {
        assert!(took < Duration::from_millis(500), "{what} took {took:?}");
    };
    let began = Instant::now();
    assert_eq!(get(&app, "/health/live").await.status, StatusCode::OK);
    quick(began.elapsed(), "/health/live");
    let began = Instant::now();
    let a = post(
        &app,
        "/v1/jobs",
        json!({"kind": "k", "payload": 1, "queue": "work"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    quick(began.elapsed(), "an enqueue");
    let id = a.body["id"].as_i64().unwrap();
    let began = Instant::now();
    assert_eq!(
        get(&app, &format!("/v1/jobs/{id}")).await.status,
        StatusCode::OK
    );
    quick(began.elapsed(), "a status read");
    let began = Instant::now();
    let claimed = post(
        &app,
        "/v1/queues/work/claim",
        json!({"worker": "quick", "limit": 1}),
    )
    .await;
    assert_eq!(claimed.status, StatusCode::OK, "{:?}", claimed.body);
    quick(began.elapsed(), "a claim without waiting");
    let token = claimed.body["jobs"][0]["lease_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let began = Instant::now();
    let done = post(
        &app,
        &format!("/v1/jobs/{id}/complete"),
        json!({"lease_token": token}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    quick(began.elapsed(), "a completion");
    drop(streams);
    for poll in polls {
        poll.abort();
    }
}
