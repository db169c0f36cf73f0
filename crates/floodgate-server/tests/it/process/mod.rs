//! Tests of the real `floodgate` binary as separate processes, over real HTTP: the Python
//! example worker (on the client package) draining a queue, the client packages' own suites,
//! a SIGTERM under load (nothing acknowledged is lost, nothing is left running), two servers
//! sharing one PostgreSQL database, and half-sent requests.
//!
//! The HTTP client is a few lines over `std::net::TcpStream` (HTTP/1.1, `Connection: close`),
//! so these tests see exactly what any client sees. The PostgreSQL test creates a database of
//! its own with `psql` and skips (printing why) when that fails, unless
//! `FLOODGATE_REQUIRE_SERVICES=1`.

use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::process::*;

mod webhook_answers;

mod half_sent;

mod clients;

mod takeover;

mod fleet_limits;

mod logs;

mod pg_cut;

mod relay;

/// The Python example worker drains a queue: emails succeed with their result, resizes
/// succeed after sleeping, and jobs that always fail go dead with their error.
#[test]
fn python_worker_drains_jobs_and_reports_failures() {
    let _machine = shared_machine();
    // The example runs on the client package, installed in the suites' virtual environment.
    let Some(python) = clients::python_venv() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("jobs.db");
    let server = Server::start(db.to_str().expect("a UTF-8 path"), dir.path());
    let port = server.port;
    let emails: Vec<(i64, String)> = (0..5)
        .map(|i| {
            let to = format!("user{i}@example.com");
            (
                enqueue(port, json!({"kind": "email", "payload": {"to": to}})),
                to,
            )
        })
        .collect();
    let dead: Vec<i64> = (0..2)
        .map(|_| enqueue(port, json!({"kind": "always_fails", "payload": {}})))
        .collect();
    let resize = enqueue(port, json!({"kind": "resize", "payload": {"seconds": 0.2}}));

    let mut worker = Command::new(python)
        .arg(WORKER_PY)
        .arg("--server")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--idle-exit", "3"])
        .env_remove("FLOODGATE_API_TOKEN")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python worker");
    let Some(status) = wait_with_limit(&mut worker, Duration::from_secs(60)) else {
        let _ = worker.kill();
        let _ = worker.wait();
        panic!("the Python worker did not exit within 60 s");
    };
    let mut output = String::new();
    if let Some(mut stdout) = worker.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    if let Some(mut stderr) = worker.stderr.take() {
        let _ = stderr.read_to_string(&mut output);
    }
    println!("worker output:\n{output}");
    assert!(status.success(), "the worker exited with {status}");

    for (id, to) in &emails {
        let (_, job) = http("GET", port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(job["state"], "succeeded", "email {id}: {job}");
        assert_eq!(job["result"]["sent_to"], to.as_str(), "email {id}: {job}");
    }
    for id in &dead {
        let (_, job) = http("GET", port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(job["state"], "dead", "always_fails {id}: {job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("always fails"), "always_fails {id}: {job}");
    }
    let (_, job) = http("GET", port, &format!("/v1/jobs/{resize}"), None);
    assert_eq!(job["state"], "succeeded", "resize {resize}: {job}");
    assert_eq!(job["result"]["ok"], json!(true), "resize {resize}: {job}");
    // Counts come from a sample at most a second old.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = counts(port, "default");
        if c["pending"] == json!(0) && c["running"] == json!(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Enqueues jobs one POST at a time until the server stops answering (or `until`); the ids
/// answered 2xx.
fn produce(port: u16, producer: u32, until: Instant) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0_u64.. {
        if Instant::now() > until {
            break;
        }
        let job = json!({"kind": "load", "payload": {"producer": producer, "n": n}});
        match try_http("POST", port, "/v1/jobs", Some(&job)) {
            Ok((200 | 202, body)) => ids.push(body["id"].as_i64().expect("an id")),
            Ok(_) => thread::sleep(Duration::from_millis(5)), // 503 while stopping
            Err(_) => break,
        }
    }
    ids
}

/// Claims (10 at a time) and completes jobs until the server stops answering (or `until`);
/// the ids whose completion was answered 200.
fn consume(port: u16, worker: u32, until: Instant) -> Vec<i64> {
    let claim = json!({"worker": format!("consumer-{worker}"), "limit": 10});
    let mut completed = Vec::new();
    while Instant::now() < until {
        let jobs = match try_http("POST", port, "/v1/queues/default/claim", Some(&claim)) {
            Ok((200, body)) => body["jobs"].as_array().cloned().unwrap_or_default(),
            Ok(_) => Vec::new(),
            Err(_) => break,
        };
        if jobs.is_empty() {
            thread::sleep(Duration::from_millis(5));
        }
        for job in &jobs {
            let path = format!("/v1/jobs/{}/complete", job["id"]);
            let report = json!({"lease_token": job["lease_token"], "result": null});
            match try_http("POST", port, &path, Some(&report)) {
                Ok((200, _)) => completed.push(job["id"].as_i64().expect("an id")),
                Ok(_) => {} // 409 once shutdown put the lease back, 503 while stopping
                Err(_) => return completed,
            }
        }
    }
    completed
}

/// Counts the jobs in `state` in the SQLite file, read directly (not through the server).
fn count_in_file(db: &str, state: &str) -> i64 {
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{db}?mode=ro"))
                .await
                .expect("open the database file");
            let n = sqlx::query_scalar("SELECT count(*) FROM floodgate_jobs WHERE state = ?1")
                .bind(state)
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            n
        })
}

/// SIGTERM while 4 threads enqueue and 2 claim and complete: the server exits with status 0,
/// and after a restart on the same SQLite file every job answered 2xx exists and none is
/// left `running` (leases held by HTTP workers are put back at shutdown).
#[test]
fn sigterm_under_load_loses_nothing_and_leaves_nothing_running() {
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("jobs.db");
    let db = db.to_str().expect("a UTF-8 path").to_owned();
    let mut server = Server::start(&db, dir.path());
    let port = server.port;
    // The threads end on connection errors; this bounds them if the server never stops.
    let until = Instant::now() + Duration::from_secs(60);
    let producers: Vec<_> = (0..4)
        .map(|t| thread::spawn(move || produce(port, t, until)))
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|t| thread::spawn(move || consume(port, t, until)))
        .collect();

    thread::sleep(Duration::from_millis(1500));
    let status = server.terminate();
    let accepted: Vec<i64> = producers
        .into_iter()
        .flat_map(|h| h.join().expect("a producer thread panicked"))
        .collect();
    let completed: Vec<i64> = consumers
        .into_iter()
        .flat_map(|h| h.join().expect("a consumer thread panicked"))
        .collect();
    let n = accepted.len();
    println!("{n} accepted, {} completed before SIGTERM", completed.len());
    assert_eq!(status.code(), Some(0), "the exit status after SIGTERM");
    // 1.5 s of four producers: hundreds of jobs on the slowest machine this runs on.
    assert!(
        n >= 100,
        "only {n} enqueues answered 2xx: the load never built up"
    );
    assert!(!completed.is_empty(), "no completion was acknowledged");
    let unique: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(unique.len(), n, "an id was answered twice");
    drop(server);
    // In the file itself, before anything starts again: no lease left held.
    assert_eq!(
        count_in_file(&db, "running"),
        0,
        "jobs left running in the file"
    );

    let server = Server::start(&db, dir.path());
    for id in &accepted {
        let (status, body) = http("GET", server.port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(status, 200, "job {id} was accepted before SIGTERM: {body}");
    }
    for id in &completed {
        let (_, body) = http("GET", server.port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(
            body["state"], "succeeded",
            "job {id}'s completion was acknowledged: {body}"
        );
    }
}

/// A database of one test's own on the PostgreSQL server at `DATABASE_URL`, dropped (with
/// `WITH (FORCE)`) when this is dropped.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(label: &str) -> Option<PgDatabase> {
        let admin_url = floodgate_testing::database_url();
        let name = format!("fg_{label}_{}", std::process::id());
        let drop_old = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let created = psql(&admin_url, &drop_old)
            .and_then(|()| psql(&admin_url, &format!("CREATE DATABASE {name}")));
        if let Err(why) = created {
            return floodgate_testing::unavailable("PostgreSQL (with psql)", &admin_url, why);
        }
        // The same server, another database: replace the URL's path, keep its query.
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let host = base.find("://").map_or(0, |i| i + 3);
        let server = base[host..].find('/').map_or(base, |i| &base[..host + i]);
        let url = format!("{server}/{name}{query}");
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Claims (20 at a time, long-polling 1 s) and completes jobs with `{"by": name}`, recording
/// each id completed, until a claim finds nothing after `done` is set.
fn work(port: u16, name: &str, done: &AtomicBool, completed: &Mutex<Vec<i64>>) {
    let claim = json!({"worker": name, "limit": 20, "wait": 1});
    loop {
        let (status, body) = http("POST", port, "/v1/queues/default/claim", Some(&claim));
        assert_eq!(status, 200, "claim on port {port}: {body}");
        let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() && done.load(Ordering::SeqCst) {
            return;
        }
        for job in &jobs {
            let id = job["id"].as_i64().expect("an id");
            let report = json!({"lease_token": job["lease_token"], "result": {"by": name}});
            let path = format!("/v1/jobs/{id}/complete");
            let (status, body) = http("POST", port, &path, Some(&report));
            assert_eq!(status, 200, "complete {id} on port {port}: {body}");
            completed.lock().expect("the list").push(id);
        }
    }
}

/// Two servers on one PostgreSQL database, four workers (two per server) claiming 20 at a
/// time: each of 2,000 jobs is completed exactly once, and both servers count 2,000 succeeded.
#[test]
fn two_servers_on_one_postgres_complete_every_job_once() {
    let _machine = shared_machine();
    let Some(db) = PgDatabase::create("two_servers") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut a = Server::start(&db.url, dir.path());
    let mut b = Server::start(&db.url, dir.path());

    let mut expected = HashSet::new();
    for batch in 0..4 {
        let jobs: Vec<Value> = (0..500)
            .map(|i| json!({"kind": "count", "payload": {"n": batch * 500 + i}}))
            .collect();
        let (status, body) = http("POST", a.port, "/v1/jobs", Some(&json!({ "jobs": jobs })));
        assert_eq!(status, 202, "batch {batch}: {body}");
        for job in body["jobs"].as_array().expect("one answer per job") {
            expected.insert(job["id"].as_i64().expect("an id"));
        }
    }
    assert_eq!(expected.len(), 2_000, "distinct ids");

    let done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let port = if w % 2 == 0 { a.port } else { b.port };
            let (done, completed) = (Arc::clone(&done), Arc::clone(&completed));
            thread::spawn(move || work(port, &format!("worker-{w}"), &done, &completed))
        })
        .collect();

    // Until both servers see nothing pending or running (or a worker thread ended early).
    let deadline = Instant::now() + Duration::from_secs(120);
    let busy = |port| {
        let c = counts(port, "default");
        c["pending"] != json!(0) || c["running"] != json!(0)
    };
    while (busy(a.port) || busy(b.port)) && !workers.iter().any(|h| h.is_finished()) {
        assert!(Instant::now() < deadline, "jobs left after 120 s");
        thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::SeqCst);
    for h in workers {
        h.join().expect("a worker thread panicked");
    }

    let completed = completed.lock().expect("the list").clone();
    let unique: HashSet<i64> = completed.iter().copied().collect();
    assert_eq!(unique.len(), completed.len(), "a job completed twice");
    assert_eq!(completed.len(), 2_000, "completions");
    assert_eq!(unique, expected, "the completed ids are the enqueued ids");
    for server in [&a, &b] {
        // A sample at most a second old; jobs finished in the last two seconds are counted
        // on top of the totals until they settle.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = counts(server.port, "default");
            if c["succeeded"] == json!(2_000) {
                break;
            }
            assert!(Instant::now() < deadline, "on port {}: {c}", server.port);
            thread::sleep(Duration::from_millis(100));
        }
    }
    for server in [&mut a, &mut b] {
        let status = server.terminate();
        assert_eq!(status.code(), Some(0), "the exit status after SIGTERM");
    }
}
