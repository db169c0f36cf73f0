//! Every JSON body goes through one extractor: an object that names a member twice is refused
//! with 400 `DUPLICATE_MEMBER` naming the member's path (before: accepted, silently taking one
//! of them, while other parsers in a user's stack take the other), and nothing is written.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{get, post, raw, test_app};

async fn send(app: &axum::Router, path: &str, body: &'static str) -> crate::support::Answer {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    raw(app, request).await
}

#[tokio::test]
async fn a_member_named_twice_is_refused_with_its_path() {
    let (app, _) = test_app().await;
    for (path, body, member) in [
        (
            "/v1/jobs",
            r#"{"kind": "a", "payload": {}, "kind": "b"}"#,
            "kind",
        ),
        (
            "/v1/jobs",
            r#"{"kind": "a", "payload": {"to": 1, "to": 2}}"#,
            "payload.to",
        ),
        (
            "/v1/jobs",
            r#"{"jobs": [{"kind": "a", "payload": {}}, {"kind": "b", "payload": {}, "kind": "c"}]}"#,
            "jobs[1].kind",
        ),
        (
            "/v1/queues/default/claim",
            r#"{"worker": "w", "worker": "v"}"#,
            "worker",
        ),
    ] {
        let answer = send(&app, path, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "DUPLICATE_MEMBER");
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{member}`")), "{detail}");
    }
    let listed = get(&app, "/v1/jobs").await;
    assert_eq!(
        listed.body["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing written"
    );

    // The same name in two objects, or in a payload's nested objects, is no repeat.
    let fine = post(
        &app,
        "/v1/jobs",
        json!({"kind": "a", "payload": {"a": {"x": 1}, "b": {"x": 2}}}),
    )
    .await;
    assert_eq!(fine.status, StatusCode::ACCEPTED, "{:?}", fine.body);
    // Not JSON, or not sent as JSON: MALFORMED_JSON as before.
    let broken = send(&app, "/v1/jobs", r#"{"kind": "a", "#).await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.code(), "MALFORMED_JSON");
}
