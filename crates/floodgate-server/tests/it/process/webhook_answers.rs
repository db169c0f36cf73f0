//! A receiver's answer never grows the server: one that streams an endless 500 body, and one
//! that drips a 200 body a byte at a time, each delivered to ten times over by the real
//! binary. The server reads what it keeps (4 KiB) and no more, cuts a dripping body off at the
//! request's timeout, and records each attempt with its status, the kept bytes and why the
//! body is not whole. (Before: the whole body was read, 6.3 GB of resident memory in 10 s.)

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::process::{Server, enqueue, http, shared_machine};

/// How each receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// `500`, chunked, 64 KiB chunks without end (for at most 20 s or 4 GB a connection).
    Endless,
    /// `200` announcing 1 MB, then one byte every 50 ms (for at most 20 s).
    Drip,
}

/// A receiver on a free loopback port, one thread per connection; its port.
fn receiver(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream, answer));
        }
    });
    port
}

fn serve(mut stream: TcpStream, answer: Answer) {
    // The request's head; the body (a small JSON document) is left unread.
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let until = Instant::now() + Duration::from_secs(20);
    match answer {
        Answer::Endless => {
            let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = format!("10000\r\n{}\r\n", "e".repeat(0x10000));
            let mut sent = 0u64;
            while Instant::now() < until && sent < 4 << 30 {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    return; // the server hung up: what it was meant to do
                }
                sent += 0x10000;
            }
        }
        Answer::Drip => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            while Instant::now() < until {
                if stream.write_all(b"d").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A line of `/proc/PID/status` in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The job's first recorded attempt: from its result when delivered, else from
/// `metadata.attempts`. `None` until there is one.
fn first_attempt(job: &Value) -> Option<Value> {
    if job["state"] == "succeeded" {
        return Some(job["result"].clone());
    }
    job["metadata"]["attempts"].get(0).cloned()
}

#[test]
fn huge_and_dripping_answers_never_grow_the_server() {
    let _machine = shared_machine();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("floodgate.toml"),
        "[webhooks]\ntimeout = 2\nallow_private = true\nschedule = [600]\nbreaker_failures = 100\n",
    )
    .unwrap();
    let mut server = Server::start_with(
        "jobs.db",
        dir.path(),
        &[
            "--config",
            dir.path().join("floodgate.toml").to_str().unwrap(),
        ],
    );
    let pid = server.child.id();
    let (endless, drip) = (receiver(Answer::Endless), receiver(Answer::Drip));
    // Warm up (the first delivery builds clients, pools, the registry), then measure.
    let warm = enqueue(
        server.port,
        json!({"kind": "webhook", "payload": {"url": format!("http://127.0.0.1:{drip}/warm"), "body": {}}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_attempt(&http("GET", server.port, &format!("/v1/jobs/{warm}"), None).1).is_none() {
        assert!(
            Instant::now() < deadline,
            "the warm-up delivery never ended"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let before = status_kb(pid, "VmRSS:");
    let ids: Vec<(i64, Answer)> = (0..20)
        .map(|n| {
            let (port, answer) = if n % 2 == 0 {
                (endless, Answer::Endless)
            } else {
                (drip, Answer::Drip)
            };
            let url = format!("http://127.0.0.1:{port}/hook/{n}");
            // Two destinations: the endless one's failures must not open the drip's breaker.
            let destination = if n % 2 == 0 { "endless" } else { "drip" };
            let id = enqueue(
                server.port,
                json!({"kind": "webhook", "payload": {
                    "url": url, "body": {"n": n}, "destination": destination,
                }}),
            );
            (id, answer)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempts = Vec::new();
    for (id, answer) in &ids {
        loop {
            let (_, job) = http("GET", server.port, &format!("/v1/jobs/{id}"), None);
            if let Some(attempt) = first_attempt(&job) {
                attempts.push((*answer, attempt, job));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} has no attempt yet: {job}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    let peak = status_kb(pid, "VmHWM:");
    let grew_mb = peak.saturating_sub(before) / 1024;
    assert!(
        grew_mb < 50,
        "20 deliveries of huge or dripping answers took the server from {before} kB to a peak \
         of {peak} kB"
    );
    for (answer, attempt, job) in attempts {
        let body = attempt["body"].as_str().unwrap_or_default();
        let why = attempt["body_error"].as_str().unwrap_or_default();
        match answer {
            Answer::Endless => {
                assert_eq!(attempt["status"], 500, "{job}");
                assert_eq!(body.len(), 4096, "the first 4 KiB are kept: {job}");
                assert!(body.bytes().all(|b| b == b'e'));
                assert!(why.contains("longer than 4096 bytes"), "{attempt}");
                assert_eq!(attempt["error"], why, "the attempt says why: {attempt}");
            }
            Answer::Drip => {
                assert_eq!(attempt["status"], 200, "{job}");
                assert_eq!(job["state"], "succeeded", "a 200 is a delivery: {job}");
                assert!(!body.is_empty() && body.len() < 100, "{attempt}");
                assert!(
                    why.contains("did not end within the request's timeout"),
                    "{attempt}"
                );
                let took = attempt["duration_ms"].as_u64().unwrap();
                assert!(
                    (1_900..10_000).contains(&took),
                    "cut at the 2 s timeout: {took} ms"
                );
            }
        }
    }
    assert!(server.terminate().success());
}
