//! What a JSON body may say: an object that names a member twice is refused with 400
//! `DUPLICATE_MEMBER` naming the member's path (before: accepted, silently taking one of them,
//! while other parsers in a user's stack take the other), and nothing is written; `5.0` is an
//! integer setting's `5`; one job's idempotency key is the header, a batch's are its jobs'; a
//! payload path or value alone filters.

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

/// JSON does not tell `5` from `5.0`: an integer setting written with a zero fraction is
/// taken, while a payload keeps its numbers exactly as sent.
#[tokio::test]
async fn whole_numbers_with_a_fraction_are_integers_but_payloads_are_kept() {
    let (app, _) = test_app().await;
    let one = post(
        &app,
        "/v1/jobs",
        json!({"kind": "a", "priority": 8.0, "max_attempts": 3.0, "payload": {"x": 1.0}}),
    )
    .await;
    assert_eq!(one.status, StatusCode::ACCEPTED, "{:?}", one.body);
    let job = get(&app, &format!("/v1/jobs/{}", one.body["id"]))
        .await
        .body;
    assert_eq!(
        (job["priority"].clone(), job["max_attempts"].clone()),
        (json!(8), json!(3))
    );
    assert!(job["payload"]["x"].is_f64(), "the payload as sent: {job}");
    let claim = post(
        &app,
        "/v1/queues/default/claim",
        json!({"worker": "w", "limit": 2.0}),
    )
    .await;
    assert_eq!(claim.status, StatusCode::OK, "{:?}", claim.body);
    let half = post(&app, "/v1/jobs", json!({"kind": "a", "priority": 8.5})).await;
    assert_eq!(
        half.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        half.body
    );
}

/// One job's idempotency key is the `Idempotency-Key` header (bare or quoted), and the body's
/// field is refused; a batch's are its jobs' own `idempotency_key` fields, and a header on a
/// batch keys each job without one `{header}:{index}`, so a retried batch makes nothing twice.
#[tokio::test]
async fn one_key_in_the_header_a_batch_s_in_its_jobs() {
    let (app, _) = test_app().await;
    let send_with = |body: serde_json::Value, key: &'static str| {
        let app = app.clone();
        async move {
            let request = Request::post("/v1/jobs")
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(Body::from(body.to_string()))
                .unwrap();
            raw(&app, request).await
        }
    };
    let bare = send_with(json!({"kind": "a"}), "k-1").await;
    assert_eq!(bare.status, StatusCode::ACCEPTED, "{:?}", bare.body);
    let quoted = send_with(json!({"kind": "a"}), "\"k-1\"").await;
    assert_eq!(
        quoted.status,
        StatusCode::OK,
        "the same key, quoted: {:?}",
        quoted.body
    );
    assert_eq!(quoted.body["id"], bare.body["id"]);
    for bad in ["\"\"", "a\"b", "\"a\\b\""] {
        let refused = send_with(json!({"kind": "a"}), bad).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {:?}",
            refused.body
        );
    }
    let in_body = post(
        &app,
        "/v1/jobs",
        json!({"kind": "a", "idempotency_key": "k-2"}),
    )
    .await;
    assert_eq!(
        in_body.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        in_body.body
    );
    assert!(
        in_body.body["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key header")
    );
    let batch = json!({"jobs": [{"kind": "a", "idempotency_key": "own"}, {"kind": "b"}]});
    let first = send_with(batch.clone(), "batch-1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);
    let again = send_with(batch, "batch-1").await;
    assert_eq!(
        again.body["jobs"],
        json!([
            {"id": first.body["jobs"][0]["id"], "state": "pending", "duplicate": true,
             "location": first.body["jobs"][0]["location"]},
            {"id": first.body["jobs"][1]["id"], "state": "pending", "duplicate": true,
             "location": first.body["jobs"][1]["location"]},
        ]),
        "a retried batch makes nothing twice"
    );
    let keyed = get(&app, &format!("/v1/jobs/{}", first.body["jobs"][1]["id"])).await;
    assert_eq!(keyed.body["idempotency_key"], "batch-1:1");
    let own = get(&app, &format!("/v1/jobs/{}", first.body["jobs"][0]["id"])).await;
    assert_eq!(own.body["idempotency_key"], "own");
    let too_long = send_with(
        json!({"kind": "a"}),
        Box::leak("k".repeat(249).into_boxed_str()),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A payload path alone lists the jobs whose payload has it; a value alone, those whose whole
/// payload is it (before: either alone was refused).
#[tokio::test]
async fn a_payload_path_or_value_alone_filters() {
    let (app, _) = test_app().await;
    let with = post(
        &app,
        "/v1/jobs",
        json!({"kind": "a", "payload": {"customer": {"id": 7}}}),
    )
    .await;
    post(
        &app,
        "/v1/jobs",
        json!({"kind": "a", "payload": {"other": 1}}),
    )
    .await;
    let plain = post(&app, "/v1/jobs", json!({"kind": "a", "payload": "hello"})).await;
    let listed = get(&app, "/v1/jobs?path=customer.id").await;
    let ids: Vec<_> = listed.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, [with.body["id"].clone()], "{:?}", listed.body);
    let count = get(&app, "/v1/jobs/count?value=hello").await;
    assert_eq!(count.body["count"], 1, "{:?}", count.body);
    let listed = get(&app, "/v1/jobs?value=hello").await;
    assert_eq!(listed.body["jobs"][0]["id"], plain.body["id"]);
}
