//! Limits across a fleet, on the real binary with Redis: two `floodgate serve` processes share
//! one limit (never exceeded, counted by the test itself), a killed server's permits come back
//! after their lease, each failure policy holds while Redis is out of reach (through a proxy
//! the test cuts) and recovers when it returns, and breakers follow each other's transitions.
//!
//! Every test uses names of its own, so runs and tests never share Redis keys. Skipped
//! (printing why) without Redis, unless `FLOODGATE_REQUIRE_SERVICES=1`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::process::{Server, http, shared_machine, try_http_full, within};
use crate::support::proxy::{Proxy, redis_addr};

fn redis() -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(floodgate_testing::redis_url())
}

/// A name no other run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

fn serve(dir: &Path, name: &str, settings: &str) -> Server {
    let config = dir.join(format!("{name}.toml"));
    let mut file = std::fs::File::create(&config).expect("write the settings");
    file.write_all(settings.as_bytes())
        .expect("write the settings");
    let db = dir.join(format!("{name}.db"));
    Server::start_with(
        db.to_str().expect("a UTF-8 path"),
        dir,
        &["--config", config.to_str().expect("a UTF-8 path")],
    )
}

fn acquire(port: u16, limiter: &str, body: Value) -> (u16, Value) {
    http(
        "POST",
        port,
        &format!("/v1/limiters/{limiter}/permits"),
        Some(&body),
    )
}

#[test]
fn two_servers_never_hold_more_than_the_fleet_limit() {
    let Some(url) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = unique("fleet");
    const LIMIT: usize = 4;
    let settings = format!(
        "redis_url = \"{url}\"\n[limiters.{name}]\nmax_concurrency = {LIMIT}\nlease_ttl = 2\nmax_wait = 60\n"
    );
    let a = serve(dir.path(), "a", &settings);
    let b = serve(dir.path(), "b", &settings);
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    const CLIENTS: usize = 200;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let port = if n % 2 == 0 { a.port } else { b.port };
            let (holding, most, name) = (holding.clone(), most.clone(), name.clone());
            thread::spawn(move || {
                let (status, permit) = acquire(
                    port,
                    &name,
                    json!({"wait": 60, "holder": format!("client {n}")}),
                );
                assert_eq!(status, 201, "{permit}");
                assert_eq!(permit["scope"], "fleet");
                assert_eq!(permit["enforced"], true);
                // Counted from the grant to just before the release: inside the server's own
                // span of the permit.
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
                holding.fetch_sub(1, Ordering::SeqCst);
                let id = permit["permit_id"].as_str().expect("an id");
                let (status, body) = http("DELETE", port, &format!("/v1/permits/{id}"), None);
                assert_eq!(status, 204, "{body}");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client");
    }
    let most = most.load(Ordering::SeqCst);
    println!("{CLIENTS} clients on two servers: at most {most} held at once (limit {LIMIT})");
    assert!(
        most <= LIMIT,
        "{most} permits held at once, over the limit {LIMIT}"
    );
    assert!(
        most >= 2,
        "the clients never overlapped: the test proves nothing ({most})"
    );
    let (_, listed) = http("GET", a.port, "/v1/limiters", None);
    let view = &listed["limiters"][0];
    assert_eq!(view["scope"], "fleet", "{view}");
    assert_eq!(view["limit"], LIMIT, "{view}");
    assert_eq!(view["acquired"], CLIENTS / 2, "{view}");
}

#[test]
fn a_killed_servers_permits_come_back_after_their_lease() {
    let Some(url) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = unique("killed");
    let settings =
        format!("redis_url = \"{url}\"\n[limiters.{name}]\nmax_concurrency = 3\nlease_ttl = 2\n");
    let mut a = serve(dir.path(), "a", &settings);
    let b = serve(dir.path(), "b", &settings);
    for _ in 0..3 {
        let (status, body) = acquire(a.port, &name, json!({}));
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = acquire(b.port, &name, json!({}));
    assert_eq!(
        (status, &body["code"]),
        (429, &json!("ACQUIRE_TIMEOUT")),
        "{body}"
    );
    // The holder dies without a word; its Redis leases end within their TTL.
    a.child.kill().expect("kill -9 the holder's server");
    let _ = a.child.wait();
    let killed = Instant::now();
    for n in 0..3 {
        let (status, body) = acquire(b.port, &name, json!({"wait": 10}));
        assert_eq!(status, 201, "permit {n} after the kill: {body}");
    }
    let back = killed.elapsed();
    println!("a killed server's 3 permits were all back {back:?} after the kill (lease 2 s)");
    assert!(back < Duration::from_secs(6), "{back:?}");
}

#[test]
fn with_redis_out_of_reach_each_policy_holds_and_recovers() {
    let Some(url) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let proxy = Proxy::start(redis_addr(&url));
    let (lc, lo, rc, ro) = (unique("lc"), unique("lo"), unique("rc"), unique("ro"));
    let short = unique("short");
    let settings = format!(
        "redis_url = \"{}\"\n\
         [limiters.{lc}]\nmax_concurrency = 5\n\
         [limiters.{short}]\nmax_concurrency = 5\nlease_ttl = 1\n\
         [limiters.{lo}]\nmax_concurrency = 5\nfailure_policy = \"open\"\n\
         [rate_limits.{rc}]\nrate = 1000\n\
         [rate_limits.{ro}]\nrate = 1000\nfailure_policy = \"open\"\n",
        proxy.redis_url()
    );
    let server = serve(dir.path(), "policies", &settings);
    let port = server.port;
    let check = |name: &str| {
        try_http_full(
            "POST",
            port,
            &format!("/v1/rate-limits/{name}/check"),
            Some(&json!({"key": "k"})),
        )
        .expect("an answer")
    };
    let permit = |name: &str| {
        try_http_full(
            "POST",
            port,
            &format!("/v1/limiters/{name}/permits"),
            Some(&json!({})),
        )
        .expect("an answer")
    };
    // Reachable: every answer enforced.
    for name in [&rc, &ro] {
        let (status, _, body) = check(name);
        assert_eq!((status, &body["enforced"]), (200, &json!(true)), "{body}");
    }
    // Every permit given, released at the end: none may stay held.
    let mut granted: Vec<String> = Vec::new();
    let id_of = |body: &Value| body["permit_id"].as_str().expect("an id").to_owned();
    for name in [&lc, &lo] {
        let (status, _, body) = permit(name);
        assert_eq!((status, &body["enforced"]), (201, &json!(true)), "{body}");
        granted.push(id_of(&body));
    }
    // Its lease here is 30 s (the request's), in Redis 1 s (the limiter's, renewed by the
    // server while it holds the permit).
    let (status, kept) = http(
        "POST",
        port,
        &format!("/v1/limiters/{short}/permits"),
        Some(&json!({"lease_ttl": 30})),
    );
    assert_eq!(status, 201, "{kept}");
    let kept = kept["permit_id"].as_str().expect("an id").to_owned();
    proxy.cut();
    // Closed: 503 with Retry-After (the seed's path). Open: through, unenforced.
    let took = within(Duration::from_secs(10), || {
        let (status, headers, body) = check(&rc);
        if status == 503
            && body["code"] == "RATE_LIMIT_UNAVAILABLE"
            && headers.contains_key("retry-after")
        {
            Ok(())
        } else {
            Err((status, body))
        }
    });
    println!("closed rate limit answered 503 {took:?} after Redis went out of reach");
    let (status, headers, body) = permit(&lc);
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("LIMITER_UNAVAILABLE")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    let (status, _, body) = check(&ro);
    assert_eq!((status, &body["enforced"]), (200, &json!(false)), "{body}");
    // Open: through, but this server alone keeps to the limit of 5.
    for n in 0..5 {
        let (status, _, body) = permit(&lo);
        assert_eq!(
            (status, &body["enforced"]),
            (201, &json!(false)),
            "unguarded {n}: {body}"
        );
        granted.push(id_of(&body));
    }
    let (status, _, body) = permit(&lo);
    assert_eq!(
        (status, &body["code"]),
        (429, &json!("ACQUIRE_TIMEOUT")),
        "{body}"
    );
    // A permit heartbeated through the cut outlives its 1 s Redis lease here (which nobody
    // can renew while Redis is away)...
    let beat = format!("/v1/permits/{kept}/heartbeat");
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_millis(2_000) {
        let (status, body) = http("POST", port, &beat, None);
        assert_eq!(status, 200, "{body}");
        thread::sleep(Duration::from_millis(200));
    }
    proxy.restore();
    // ... but Redis gave its slot up: once the server learns it, the permit is lost.
    within(Duration::from_secs(10), || {
        match http("POST", port, &beat, None) {
            (409, body) if body["code"] == "PERMIT_LOST" => Ok(()),
            other => Err(other),
        }
    });
    let took = within(Duration::from_secs(15), || {
        let (status, _, body) = check(&rc);
        if status == 200 && body["enforced"] == true {
            Ok(())
        } else {
            Err((status, body))
        }
    });
    println!("closed rate limit enforced again {took:?} after Redis came back");
    // Each limit has its own connection, reconnecting on its own backoff (at most 2 s).
    within(Duration::from_secs(15), || match check(&ro) {
        (200, _, body) if body["enforced"] == true => Ok(()),
        other => Err(other),
    });
    within(Duration::from_secs(15), || match permit(&lc) {
        (201, _, body) if body["enforced"] == true => {
            granted.push(id_of(&body));
            Ok(())
        }
        other => Err(other),
    });
    for id in &granted {
        let (status, body) = http("DELETE", port, &format!("/v1/permits/{id}"), None);
        assert_eq!(status, 204, "{body}");
    }
    // Nothing leaked: not here, not in Redis (the unguarded ones never were).
    within(Duration::from_secs(10), || {
        let (_, listed) = http("GET", port, "/v1/limiters", None);
        let leaked = listed["limiters"]
            .as_array()
            .expect("limiters")
            .iter()
            .filter(|l| l["name"] == lc.as_str() || l["name"] == lo.as_str())
            .filter(|l| l["held_here"] != 0 || l["held_fleet"] != 0)
            .count();
        if leaked == 0 {
            Ok(())
        } else {
            Err(listed.to_string())
        }
    });
}

#[test]
fn a_wrong_redis_port_is_unavailable_under_the_closed_policy() {
    let Some(_) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let nobody = crate::support::process::free_port();
    let settings = format!(
        "redis_url = \"redis://127.0.0.1:{nobody}\"\n[rate_limits.api]\nrate = 10\n\
         [rate_limits.lenient]\nrate = 10\nfailure_policy = \"open\"\n"
    );
    let server = serve(dir.path(), "wrong", &settings);
    let (status, headers, body) = try_http_full(
        "POST",
        server.port,
        "/v1/rate-limits/api/check",
        Some(&json!({"key": "k"})),
    )
    .expect("an answer");
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("RATE_LIMIT_UNAVAILABLE")),
        "{body}"
    );
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    let (status, body) = http(
        "POST",
        server.port,
        "/v1/rate-limits/lenient/check",
        Some(&json!({"key": "k"})),
    );
    assert_eq!((status, &body["enforced"]), (200, &json!(false)), "{body}");
}

#[test]
fn breakers_follow_each_other_through_redis() {
    let Some(url) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = unique("pay");
    let settings = format!(
        "redis_url = \"{url}\"\n[breakers.{name}]\nconsecutive_failures = 1\nopen_wait = 60\n"
    );
    let a = serve(dir.path(), "a", &settings);
    let b = serve(dir.path(), "b", &settings);
    let state = |port: u16| {
        let (_, listed) = http("GET", port, "/v1/breakers", None);
        listed["breakers"][0]["state"].clone()
    };
    let fail = |port: u16| {
        let (status, call) = http("POST", port, &format!("/v1/breakers/{name}/calls"), None);
        assert_eq!(status, 200, "{call}");
        let id = call["call_id"].as_str().expect("a call id");
        let (status, after) = http(
            "POST",
            port,
            &format!("/v1/breakers/{name}/calls/{id}"),
            Some(&json!({"outcome": "failure", "error": "card processor down"})),
        );
        assert_eq!((status, &after["state"]), (200, &json!("open")), "{after}");
    };
    let reset = |port: u16| {
        let (status, after) = http("POST", port, &format!("/v1/breakers/{name}/reset"), None);
        assert_eq!(
            (status, &after["state"]),
            (200, &json!("closed")),
            "{after}"
        );
    };
    // The first transition also waits for B's subscription to be in place.
    fail(a.port);
    within(Duration::from_secs(15), || match state(b.port) {
        s if s == "open" => Ok(()),
        s => {
            // Not subscribed yet when A published: publish again.
            reset(a.port);
            fail(a.port);
            Err(s)
        }
    });
    // Measured: a close on A, then an open on B, each followed by the other.
    reset(a.port);
    let closed = within(Duration::from_secs(1), || match state(b.port) {
        s if s == "closed" => Ok(()),
        s => Err(s),
    });
    fail(b.port);
    let opened = within(Duration::from_secs(1), || match state(a.port) {
        s if s == "open" => Ok(()),
        s => Err(s),
    });
    println!("a close reached the other server in {closed:?}, an open in {opened:?}");
    // A's own open was not echoed back as a second transition.
    let (_, listed) = http("GET", a.port, "/v1/breakers", None);
    assert_eq!(listed["breakers"][0]["last_failure"], "card processor down");
}

#[test]
fn fleet_wide_waiters_are_served_by_priority_within_a_server() {
    let Some(url) = redis() else { return };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = unique("prio");
    let settings =
        format!("redis_url = \"{url}\"\n[limiters.{name}]\nmax_concurrency = 1\nmax_queue = 3\n");
    let server = serve(dir.path(), "prio", &settings);
    let port = server.port;
    let (status, held) = acquire(port, &name, json!({}));
    assert_eq!(status, 201, "{held}");
    let waiting = |n: u64| {
        within(Duration::from_secs(10), || {
            let (_, listed) = http("GET", port, "/v1/limiters", None);
            let view = listed["limiters"][0].clone();
            if view["waiting"] == n {
                Ok(())
            } else {
                Err(view)
            }
        })
    };
    // Queued lowest first, each once the one before waits: the first is the head asking Redis.
    let (served, order) = std::sync::mpsc::channel();
    let mut waiters = Vec::new();
    for (n, priority) in [1, 9, 5].into_iter().enumerate() {
        let (name, served) = (name.clone(), served.clone());
        waiters.push(thread::spawn(move || {
            let (status, permit) = acquire(port, &name, json!({"priority": priority, "wait": 30}));
            assert_eq!(status, 201, "{permit}");
            served.send(priority).expect("the test listens");
            let id = permit["permit_id"].as_str().expect("an id").to_owned();
            // Held a moment, then given to the next.
            thread::sleep(Duration::from_millis(50));
            let (status, body) = http("DELETE", port, &format!("/v1/permits/{id}"), None);
            assert_eq!(status, 204, "{body}");
        }));
        waiting(n as u64 + 1);
    }
    let (status, full) = acquire(port, &name, json!({"wait": 5}));
    assert_eq!(
        (status, &full["code"]),
        (429, &json!("QUEUE_FULL")),
        "{full}"
    );
    let id = held["permit_id"].as_str().expect("an id");
    let (status, body) = http("DELETE", port, &format!("/v1/permits/{id}"), None);
    assert_eq!(status, 204, "{body}");
    for waiter in waiters {
        waiter.join().expect("a waiter");
    }
    let order: Vec<i32> = order.try_iter().collect();
    assert_eq!(order, vec![9, 5, 1]);
}
