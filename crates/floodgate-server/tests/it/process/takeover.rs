//! Takeover for HTTP workers, on the real binary: jobs claimed by a worker that vanishes (a
//! 1 s lease it never renews) are claimed again by a long-polling worker about a second after
//! their leases end, because the server's maintenance rescues every second
//! (`rescue_interval`) and the rescue wakes the long polls. Prints the delays; the bound only
//! tells a second from the half minute it used to take.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::support::process::{Server, enqueue, http, shared_machine};

#[test]
fn a_vanished_http_workers_jobs_are_claimed_again_soon_after_their_leases_end() {
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("jobs.db");
    let server = Server::start(db.to_str().expect("a UTF-8 path"), dir.path());
    let port = server.port;
    const JOBS: usize = 10;
    for n in 0..JOBS {
        enqueue(port, json!({"kind": "k", "payload": n}));
    }
    let (status, claimed) = http(
        "POST",
        port,
        "/v1/queues/default/claim",
        Some(&json!({"worker": "vanished", "limit": JOBS, "lease_ttl": 1})),
    );
    assert_eq!(status, 200, "{claimed}");
    let ends: Vec<(i64, DateTime<Utc>)> = claimed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            let end = j["lease_expires_at"].as_str().expect("a lease end");
            (
                j["id"].as_i64().expect("an id"),
                end.parse().expect("a time"),
            )
        })
        .collect();
    assert_eq!(ends.len(), JOBS);
    // The survivor long-polls until it has them all back.
    let mut delays = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while delays.len() < JOBS {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {JOBS} back",
            delays.len()
        );
        let (status, again) = http(
            "POST",
            port,
            "/v1/queues/default/claim",
            Some(&json!({"worker": "survivor", "limit": JOBS, "wait": 10})),
        );
        assert_eq!(status, 200, "{again}");
        let at = Utc::now();
        for job in again["jobs"].as_array().expect("jobs") {
            let id = job["id"].as_i64().expect("an id");
            let (_, end) = ends.iter().find(|(i, _)| *i == id).expect("one of them");
            let delay = (at - *end).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
            delays.push(delay);
            let report = json!({"lease_token": job["lease_token"]});
            let (status, body) = http(
                "POST",
                port,
                &format!("/v1/jobs/{id}/complete"),
                Some(&report),
            );
            assert_eq!(status, 200, "{body}");
        }
    }
    delays.sort_by(f64::total_cmp);
    let (p50, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    println!("HTTP takeover after the lease's end ({JOBS} jobs): p50 {p50:.3} s, max {max:.3} s");
    assert!(
        delays[0] >= 0.0,
        "claimed again before the lease ended: {delays:?}"
    );
    assert!(
        max < 5.0,
        "the vanished worker's jobs waited {max:.3} s past their leases"
    );
}
