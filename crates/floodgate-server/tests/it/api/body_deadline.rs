//! A request body that does not arrive whole within `request_body_timeout` is answered 408
//! `BODY_TIMEOUT` with `Connection: close`, on every route that reads a body, and nothing of
//! it is acted on; a body that arrives in time, even in pieces, is served as before.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use floodgate_server::config::Config;
use futures_util::{StreamExt, stream};

use crate::support::{app_with, get, raw};

/// A body of `first`, then nothing more for `stall`, then `rest`.
fn stalling(first: &'static str, stall: Duration, rest: &'static str) -> Body {
    let parts =
        stream::iter([(first, Duration::ZERO), (rest, stall)]).then(|(part, wait)| async move {
            tokio::time::sleep(wait).await;
            Ok::<_, std::io::Error>(Bytes::from_static(part.as_bytes()))
        });
    Body::from_stream(parts)
}

#[tokio::test]
async fn a_body_past_its_deadline_is_answered_408_and_nothing_is_enqueued() {
    let (app, _) = app_with(Config {
        request_body_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    for path in ["/v1/jobs", "/v1/queues/default/claim"] {
        let began = Instant::now();
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(stalling(
                r#"{"kind": "email", "#,
                Duration::from_secs(30),
                r#""payload": {}}"#,
            ))
            .unwrap();
        let answer = raw(&app, request).await;
        assert_eq!(
            answer.status,
            StatusCode::REQUEST_TIMEOUT,
            "{path}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "BODY_TIMEOUT");
        assert_eq!(answer.headers["connection"], "close");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("request_body_timeout"),
            "{:?}",
            answer.body
        );
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{path} answered after {took:?}"
        );
    }
    let listed = get(&app, "/v1/jobs").await;
    assert_eq!(
        listed.body["jobs"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        listed.body
    );

    // In pieces, but in time: served.
    let request = Request::post("/v1/jobs")
        .header("content-type", "application/json")
        .body(stalling(
            r#"{"kind": "email", "#,
            Duration::from_millis(200),
            r#""payload": {}}"#,
        ))
        .unwrap();
    let answer = raw(&app, request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
}
