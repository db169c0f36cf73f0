//! Half-sent requests cannot hold the server: 3,000 connections that each send a request line
//! and a header and stop (plus 200 that send their headers and half a body) are closed after
//! `header_read_timeout` / `request_body_timeout`, no more than `max_connections` are ever open
//! (the oldest idle ones are closed first, never one whose request is being answered, and a
//! quiet keep-alive connection is closed by the header clock), and throughout,
//! `/health/live` and an enqueue on fresh connections keep answering, each within a second
//! more than on the quiet server just before (usually tens of milliseconds; CI's loaded runs
//! saw up to 140 ms). (Before: all
//! 3,200 were still open 31 s later, and nothing bounded them; seen failing.)

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::process::{Server, http, try_http, whole_machine};

const HALF_HEADERS: usize = 3_000;
const HALF_BODIES: usize = 200;
const MAX_CONNECTIONS: usize = 1_000;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the server has closed `stream` (EOF or reset), reading whatever it sent first.
fn closed(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 before the close
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Opens connections in bursts of 50 every 10 ms (5,000 a second): a flood, but one the
/// server's accept loop keeps up with on a loaded 2-core machine. (Unpaced, 17,000 a second
/// from this same machine, a probe waits up to 180 ms in the kernel's accept queue behind the
/// flood: FIFO, before any code of the server's runs.)
fn pace(i: usize) {
    if i % 50 == 49 {
        thread::sleep(Duration::from_millis(10));
    }
}

fn open(port: u16, text: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(text.as_bytes())
        .expect("send half a request");
    stream
}

#[test]
fn half_sent_requests_are_bounded_and_closed_while_the_server_answers() {
    let _machine = whole_machine();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("floodgate.toml");
    std::fs::write(
        &config,
        format!(
            "header_read_timeout = {t}\nrequest_body_timeout = {t}\n\
             max_connections = {MAX_CONNECTIONS}\n\
             # the disk's fsync is not what this test is about\n\
             sqlite_synchronous_full = false\n",
            t = TIMEOUT.as_secs()
        ),
    )
    .unwrap();
    let db = dir.path().join("jobs.db");
    let server = Server::start_with(
        db.to_str().unwrap(),
        dir.path(),
        &["--config", config.to_str().unwrap()],
    );
    let port = server.port;

    // The same probes on a quiet server first: what the machine itself adds (the services
    // other tests loaded may still be busy), so the bound below is on what the flood adds.
    let mut baseline = Duration::ZERO;
    for round in 0..20 {
        let started = Instant::now();
        let (status, body) = http("GET", port, "/health/live", None);
        assert_eq!(status, 200, "{body}");
        let job = json!({"kind": "probe", "payload": {"baseline": round}});
        let (status, body) = http("POST", port, "/v1/jobs", Some(&job));
        assert_eq!(status, 202, "{body}");
        baseline = baseline.max(started.elapsed());
        thread::sleep(Duration::from_millis(20));
    }

    // A long poll taken first: the oldest connection, but busy, so never the one closed.
    let long_poll = thread::spawn(move || {
        let claim = json!({"worker": "w", "wait": 6});
        try_http("POST", port, "/v1/queues/empty/claim", Some(&claim))
    });
    thread::sleep(Duration::from_millis(300));

    // Throughout: a health check and an enqueue, each on a connection of its own.
    let done = Arc::new(AtomicBool::new(false));
    let prober = thread::spawn({
        let done = done.clone();
        move || {
            let mut slowest = (Duration::ZERO, Duration::ZERO);
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, body) = http("GET", port, "/health/live", None);
                assert_eq!(status, 200, "{body}");
                slowest.0 = slowest.0.max(started.elapsed());
                let started = Instant::now();
                let job = json!({"kind": "probe", "payload": {"round": rounds}});
                let (status, body) = http("POST", port, "/v1/jobs", Some(&job));
                assert_eq!(status, 202, "{body}");
                slowest.1 = slowest.1.max(started.elapsed());
                rounds += 1;
                thread::sleep(Duration::from_millis(20));
            }
            (slowest, rounds)
        }
    });

    let opened = Instant::now();
    let half_headers: Vec<TcpStream> = (0..HALF_HEADERS)
        .map(|i| {
            pace(i);
            open(port, "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        })
        .collect();
    let half_bodies: Vec<TcpStream> = (0..HALF_BODIES)
        .map(|i| {
            pace(i);
            open(
                port,
                "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n\
                 content-length: 100\r\n\r\n{\"kind\": \"x\", ",
            )
        })
        .collect();
    let flood = opened.elapsed();

    // The bound: the oldest half-sent connections were closed to make room for the newest,
    // once the server has accepted what waits in its backlog.
    let count_open = || {
        let open_now = half_headers
            .iter()
            .chain(half_bodies.iter())
            .filter(|s| !closed(s))
            .count();
        (open_now, half_headers.iter().position(|s| !closed(s)))
    };
    let bounded = |(open_now, first_open): (usize, Option<usize>)| {
        open_now <= MAX_CONNECTIONS
            && first_open.is_some_and(|i| i >= HALF_HEADERS - MAX_CONNECTIONS)
    };
    let mut seen = count_open();
    while !bounded(seen) && opened.elapsed() < flood + TIMEOUT / 2 {
        thread::sleep(Duration::from_millis(100));
        seen = count_open();
    }
    assert!(
        bounded(seen),
        "(open, first open) = {seen:?} of {} half-sent connections: more than \
         max_connections = {MAX_CONNECTIONS} open, or not the oldest closed first (flood {flood:?})",
        HALF_HEADERS + HALF_BODIES
    );

    // A keep-alive connection that asked once and went quiet is closed by the same clock.
    let keep_alive = open(port, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    thread::sleep(Duration::from_millis(300));
    assert!(
        !closed(&keep_alive),
        "the keep-alive connection is kept after its answer"
    );

    // The timeouts: every half-sent request is closed soon after them.
    let deadline = opened + flood + TIMEOUT + Duration::from_secs(10);
    let mut left = usize::MAX;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        left = half_headers
            .iter()
            .chain(half_bodies.iter())
            .chain([&keep_alive])
            .filter(|s| !closed(s))
            .count();
        if left == 0 {
            break;
        }
    }
    let closed_after = opened.elapsed();
    assert_eq!(
        left, 0,
        "half-sent connections still open {closed_after:?} after they were opened"
    );
    assert!(
        closed_after < flood + TIMEOUT * 3,
        "closed only after {closed_after:?} (timeouts {TIMEOUT:?}, flood took {flood:?})"
    );

    let answer = long_poll
        .join()
        .unwrap()
        .expect("the long poll is answered");
    assert!(
        matches!(answer.0, 200 | 204),
        "the long poll, busy, is never closed: {answer:?}"
    );
    done.store(true, Ordering::Relaxed);
    let (slowest, rounds) = prober.join().unwrap();
    assert!(rounds >= 5, "only {rounds} probes ran");
    let (health, enqueue) = slowest;
    // A second: far above what it takes (tens of milliseconds, most runs), far below what the
    // flood did before the fix (no answer at all). Its speed is a benchmark's to measure.
    let bound = Duration::from_secs(1) + baseline;
    println!(
        "during the flood: slowest health check {health:?}, enqueue {enqueue:?} (quiet: \
         {baseline:?})"
    );
    assert!(
        health < bound && enqueue < bound,
        "during the flood the slowest health check took {health:?}, enqueue {enqueue:?} \
         (both together took at most {baseline:?} before it)"
    );
    drop(server);
}
