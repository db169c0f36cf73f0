//! Reports for many jobs at once: `POST /v1/jobs/complete` and `POST /v1/jobs/heartbeat`,
//! each job fenced by its own lease, the rest of the batch going through.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{claim, enqueue, get, post, test_app};

fn lease_of(job: &Value) -> Value {
    json!({"id": job["id"], "lease_token": job["lease_token"]})
}

/// Three claimed jobs and one whose token is stale: the three succeed with their results, the
/// stale one is listed as lost and left as it was; a second report of the same jobs writes
/// nothing.
#[tokio::test]
async fn a_batch_completion_is_fenced_job_by_job() {
    let (app, _) = test_app().await;
    for n in 0..4 {
        enqueue(&app, "k", json!(n)).await;
    }
    let jobs = claim(&app, 4).await;
    assert_eq!(jobs.len(), 4);
    let stale = &jobs[3];
    let reports: Vec<Value> = jobs[..3]
        .iter()
        .map(|j| json!({"id": j["id"], "lease_token": j["lease_token"], "result": {"n": j["payload"]}}))
        .chain([json!({"id": stale["id"], "lease_token": "12345"})])
        .collect();
    let a = post(&app, "/v1/jobs/complete", json!({ "jobs": reports })).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let ids: Vec<Value> = jobs[..3].iter().map(|j| j["id"].clone()).collect();
    assert_eq!(a.body["succeeded"], json!(ids));
    assert_eq!(a.body["lease_lost"], json!([stale["id"]]));
    for job in &jobs[..3] {
        let view = get(&app, &format!("/v1/jobs/{}", job["id"])).await;
        assert_eq!(view.body["state"], "succeeded");
        assert_eq!(view.body["result"], json!({"n": job["payload"]}));
    }
    let view = get(&app, &format!("/v1/jobs/{}", stale["id"])).await;
    assert_eq!(
        view.body["state"], "running",
        "a stale token changes nothing"
    );
    let again = post(&app, "/v1/jobs/complete", json!({ "jobs": reports })).await;
    assert_eq!(again.body["succeeded"], json!([]));
    assert_eq!(again.body["lease_lost"].as_array().unwrap().len(), 4);
}

/// One heartbeat for every held job: extended, cancel asked for, or lost (finished, or named
/// under another worker) each in its own list.
#[tokio::test]
async fn a_batch_heartbeat_sorts_every_lease() {
    let (app, _) = test_app().await;
    for n in 0..3 {
        enqueue(&app, "k", json!(n)).await;
    }
    let jobs = claim(&app, 3).await;
    let (a, b, c) = (&jobs[0], &jobs[1], &jobs[2]);
    let cancel = post(&app, &format!("/v1/jobs/{}/cancel", b["id"]), json!({})).await;
    assert_eq!(cancel.status, StatusCode::OK, "{:?}", cancel.body);
    let done = post(
        &app,
        &format!("/v1/jobs/{}/complete", c["id"]),
        json!({"lease_token": c["lease_token"]}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK);
    let beat = post(
        &app,
        "/v1/jobs/heartbeat",
        json!({"worker": "w", "lease_ttl": 60, "jobs": [lease_of(a), lease_of(b), lease_of(c)]}),
    )
    .await;
    assert_eq!(beat.status, StatusCode::OK, "{:?}", beat.body);
    assert_eq!(beat.body["extended"], json!([a["id"]]));
    assert_eq!(beat.body["cancel_requested"], json!([b["id"]]));
    assert_eq!(beat.body["lease_lost"], json!([c["id"]]));
    let expires = beat.body["lease_expires_at"].as_str().unwrap();
    let view = get(&app, &format!("/v1/jobs/{}", a["id"])).await;
    assert!(
        view.body["lease_expires_at"].as_str().unwrap() >= &expires[..19],
        "{} vs {expires}",
        view.body["lease_expires_at"]
    );
    let stranger = post(
        &app,
        "/v1/jobs/heartbeat",
        json!({"worker": "someone-else", "jobs": [lease_of(a)]}),
    )
    .await;
    assert_eq!(stranger.body["lease_lost"], json!([a["id"]]));
}

/// A job named more than once: the same lease twice is completed once; under a stale token
/// and its own, it succeeds under its own and the stale entry is listed as lost.
#[tokio::test]
async fn a_job_named_twice_is_answered_per_entry() {
    let (app, _) = test_app().await;
    for n in 0..2 {
        enqueue(&app, "k", json!(n)).await;
    }
    let jobs = claim(&app, 2).await;
    let (a, b) = (&jobs[0], &jobs[1]);
    let stale_b = json!({"id": b["id"], "lease_token": "12345"});
    let done = post(
        &app,
        "/v1/jobs/complete",
        json!({"jobs": [lease_of(a), lease_of(a), stale_b, lease_of(b)]}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["succeeded"], json!([a["id"], b["id"]]));
    assert_eq!(done.body["lease_lost"], json!([b["id"]]));
    for job in [a, b] {
        let view = get(&app, &format!("/v1/jobs/{}", job["id"])).await;
        assert_eq!(view.body["state"], "succeeded");
    }
}

/// A worker name the claim would refuse is refused by the heartbeats too.
#[tokio::test]
async fn a_heartbeat_checks_the_worker_name() {
    let (app, _) = test_app().await;
    enqueue(&app, "k", json!(1)).await;
    let job = &claim(&app, 1).await[0];
    for worker in [json!("a\u{0}b"), json!("x".repeat(256))] {
        let many = post(
            &app,
            "/v1/jobs/heartbeat",
            json!({"worker": worker, "jobs": [lease_of(job)]}),
        )
        .await;
        assert_eq!(
            many.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            many.body
        );
        let one = post(
            &app,
            &format!("/v1/jobs/{}/heartbeat", job["id"]),
            json!({"worker": worker, "lease_token": job["lease_token"]}),
        )
        .await;
        assert_eq!(
            one.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            one.body
        );
    }
}

/// A whole number written with a fraction is the number, exactly, even near 2^53.
#[tokio::test]
async fn a_large_whole_number_with_a_fraction_is_read_exactly() {
    let (app, _) = test_app().await;
    let id = 2_251_799_813_685_247.0_f64; // sent as `2251799813685247.0`
    let a = post(
        &app,
        "/v1/jobs/heartbeat",
        json!({"worker": "w", "jobs": [{"id": id, "lease_token": "1"}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["lease_lost"], json!([2251799813685247_i64]));
}

/// A malformed report is refused whole, naming the item to fix.
#[tokio::test]
async fn a_bad_batch_report_names_the_item() {
    let (app, _) = test_app().await;
    enqueue(&app, "k", json!(1)).await;
    let job = &claim(&app, 1).await[0];
    let cases = [
        (json!({"jobs": []}), "jobs"),
        (
            json!({"jobs": [{"id": job["id"], "lease_token": "x"}]}),
            "jobs[0].lease_token",
        ),
    ];
    for (body, field) in cases {
        let a = post(&app, "/v1/jobs/complete", body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            a.body
        );
        assert_eq!(a.code(), "VALIDATION_FAILED");
        assert!(
            a.body["detail"].as_str().unwrap().starts_with(field),
            "{body}: {:?}",
            a.body
        );
        let mut beat = body.clone();
        beat["worker"] = json!("w");
        let a = post(&app, "/v1/jobs/heartbeat", beat).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            a.body
        );
    }
    let nul = json!({"text": "a\u{0}b"}); // a NUL character, which no store keeps
    let a = post(
        &app,
        "/v1/jobs/complete",
        json!({"jobs": [{"id": job["id"], "lease_token": job["lease_token"], "result": nul}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("jobs[0].result")
    );
    let view = get(&app, &format!("/v1/jobs/{}", job["id"])).await;
    assert_eq!(
        view.body["state"], "running",
        "a refused report writes nothing"
    );
}
