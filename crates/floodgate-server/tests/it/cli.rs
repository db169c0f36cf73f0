//! The `floodgate` command line as a user runs it: `config`, start-up failures with clear
//! messages, the client subcommands against a running server, and `/metrics` of a real
//! process.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::process::{BIN, Server, enqueue, http};
use serde_json::{Value, json};

/// Runs `floodgate ARGS` with a clean `FLOODGATE_*` environment plus `env`.
fn floodgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLOODGATE_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run floodgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_prints_the_layered_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floodgate.toml");
    std::fs::write(&file, "max_batch = 50\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let out = floodgate(
        &[
            "config",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9001",
        ],
        &[
            ("FLOODGATE_API_TOKEN", "very-secret-token-123456"),
            ("FLOODGATE_DATABASE_URL", "postgres://app:pa55word@db/jobs"),
            ("FLOODGATE_MAX_BATCH", "70"),
            ("FLOODGATE_MAX_LONG_POLLS", "300"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("max_batch = 70"), "env over file: {shown}");
    // The bounds of long polls, event streams and webhook answers, with their defaults.
    assert!(shown.contains("max_long_polls = 300"), "{shown}");
    assert!(shown.contains("max_event_streams = 64"), "{shown}");
    assert!(shown.contains("max_response_bytes = 4096"), "{shown}");
    // The connection bounds, with their defaults.
    assert!(shown.contains("header_read_timeout = 10"), "{shown}");
    assert!(shown.contains("request_body_timeout = 30"), "{shown}");
    assert!(shown.contains("rescue_interval = 1\n"), "{shown}");
    assert!(shown.contains("max_connections = 8192"), "{shown}");
    assert!(
        shown.contains("listen = \"127.0.0.1:9001\""),
        "flag over file: {shown}"
    );
    assert!(shown.contains("api_token = \"***\""), "{shown}");
    assert!(
        !shown.contains("very-secret") && !shown.contains("pa55word"),
        "{shown}"
    );
}

/// What `floodgate config` prints is a configuration file: read back, it gives the same
/// settings (secrets aside, which it masks), tables and per-destination overrides included.
#[test]
fn config_prints_toml_that_reads_back_as_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.toml");
    std::fs::write(
        &first,
        "max_batch = 70\nheader_read_timeout = 7\nlog = \"debug\"\n\
         redis_url = \"redis://:hunter2hunter2@cache:6379\"\n\
         [webhooks]\nconcurrency = 32\nschedule = [1.5, 60]\n\
         [webhooks.destinations.\"hooks.example.com\"]\nallow_private = true\n\
         max_concurrency = 3\n\
         [limiters.llm]\nmax_concurrency = 100\naging = 0.5\n\
         [rate_limits.per_customer]\nrate = 100\nper = 60\nfailure_policy = \"open\"\n\
         [breakers.payments]\nconsecutive_failures = 5\n",
    )
    .unwrap();
    let out = floodgate(&["config", "--config", first.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("[webhooks]"),
        "a table, not a JSON line: {shown}"
    );
    assert!(shown.contains("max_concurrency = 3"), "{shown}");
    // The named limits, with their defaults; the Redis password masked.
    assert!(
        shown.contains("[limiters.llm]\nmax_concurrency = 100\nmax_queue = 1000"),
        "{shown}"
    );
    assert!(shown.contains("[rate_limits.per_customer]"), "{shown}");
    assert!(shown.contains("failure_policy = \"open\""), "{shown}");
    assert!(shown.contains("[breakers.payments]"), "{shown}");
    assert!(shown.contains("call_deadline = 60.0"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let second = dir.path().join("second.toml");
    std::fs::write(&second, &shown).unwrap();
    let again = floodgate(&["config", "--config", second.to_str().unwrap()], &[]);
    assert!(again.status.success(), "read back: {}", text(&again.stderr));
    assert_eq!(text(&again.stdout), shown, "read back, the same settings");
}

#[test]
fn bad_settings_fail_at_start_naming_the_key_and_the_fix() {
    let out = floodgate(&["config"], &[("FLOODGATE_MAX_BATCH", "0")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("max_batch") && err.contains("between"),
        "{err}"
    );

    let out = floodgate(&["config"], &[("FLOODGATE_MAX_LONG_POLLS", "0")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("max_long_polls") && err.contains("at least 1"),
        "{err}"
    );

    let out = floodgate(&["config"], &[("FLOODGATE_REQUEST_BODY_TIMEOUT", "90")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("request_body_timeout") && err.contains("request_timeout"),
        "{err}"
    );

    let out = floodgate(&["config"], &[("FLOODGATE_RESCUE_INTERVAL", "0")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("rescue_interval") && err.contains("1 to 3600"),
        "{err}"
    );

    let out = floodgate(&["serve"], &[("FLOODGATE_MAX_BATCH", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_batch"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "max_bach = 5\n").unwrap();
    let out = floodgate(&["config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_bach"),
        "{}",
        text(&out.stderr)
    );

    let out = floodgate(&["config", "--config", "/no/such/floodgate.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not exist"));

    let out = floodgate(&["serve", "--listen", "not-an-address"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap refuses it");
}

#[test]
fn a_database_that_cannot_be_used_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a database at all\n".repeat(100)).unwrap();
    let out = floodgate(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            junk.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a SQLite database"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = floodgate(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("connection refused"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn client_subcommands_talk_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let server = Server::start(db.to_str().unwrap(), dir.path());
    let url = format!("http://127.0.0.1:{}", server.port);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        floodgate(&all, &[])
    };
    // A command that must work: exit 0, its output returned.
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "floodgate {args:?} exited {:?}: {}",
            out.status.code(),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    // The job as the server has it, read back over HTTP.
    let state_of = |id: i64| {
        let (status, job) = http("GET", server.port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(status, 200, "{job}");
        job["state"].as_str().unwrap_or_default().to_owned()
    };

    let out = run(&[
        "enqueue",
        "--kind",
        "email",
        "--payload",
        r#"{"to": "ada"}"#,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let accepted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = accepted["id"].as_i64().unwrap();
    let second = ok(&[
        "enqueue",
        "--kind",
        "email",
        "--priority",
        "9",
        "--idempotency-key",
        "k1",
        "--json",
    ]);
    let second: Value = serde_json::from_str(&second).unwrap();
    let (_, job) = http(
        "GET",
        server.port,
        &format!("/v1/jobs/{}", second["id"]),
        None,
    );
    assert_eq!(
        (&job["priority"], &job["idempotency_key"], &job["state"]),
        (&json!(9), &json!("k1"), &json!("pending")),
        "{job}"
    );

    let table = ok(&["status", &id.to_string()]);
    assert!(
        table.contains("email") && table.contains("pending"),
        "{table}"
    );
    let listed = ok(&["jobs", "--state", "pending"]);
    assert!(listed.contains("email"), "{listed}");
    // Counts come from a sample at most a second old (the server samples from its start).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = ok(&["queues"]);
        if out.contains("default") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The server's queue list (a sample at most a second old) comes to show `paused`.
    let shows_paused = |expected: bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, queues) = http("GET", server.port, "/v1/queues", None);
            let default = queues["queues"]
                .as_array()
                .and_then(|q| q.iter().find(|q| q["queue"] == "default").cloned());
            if default.as_ref().map(|q| &q["paused"]) == Some(&json!(expected)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{queues}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let out = ok(&["pause", "default"]);
    assert!(out.contains("paused"), "{out}");
    shows_paused(true);
    let out = ok(&["resume", "default"]);
    assert!(out.contains("resumed"), "{out}");
    shows_paused(false);
    let out = ok(&["cancel", &id.to_string()]);
    assert!(out.contains("cancelled"), "{out}");
    assert_eq!(state_of(id), "cancelled");
    let out = ok(&["retry", &id.to_string()]);
    assert!(out.contains("pending"), "{out}");
    assert_eq!(state_of(id), "pending");

    let out = run(&["status", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("404 NOT_FOUND"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["enqueue", "--kind", "k", "--payload", "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--payload"));
    let out = floodgate(&["queues", "--server", "http://127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach"));
}

#[test]
fn a_real_process_serves_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let server = Server::start(db.to_str().unwrap(), dir.path());
    enqueue(server.port, json!({"kind": "k", "payload": 1}));
    let (status, body) = http("GET", server.port, "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().expect("Prometheus text");
    for metric in [
        "floodgate_http_requests_total",
        "floodgate_http_request_duration_seconds",
        "floodgate_queue_",
        "floodgate_limiter_",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }
}

#[test]
fn bench_drains_jobs_through_the_worker_and_reports_figures() {
    let out = floodgate(
        &["bench", "--jobs", "300", "--concurrency", "8", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"], 300);
    assert!(report["jobs_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["start_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let table = floodgate(&["bench", "--jobs", "100"], &[]);
    assert!(
        text(&table.stdout).contains("jobs/s"),
        "{}",
        text(&table.stdout)
    );
    let bad = floodgate(&["bench", "--jobs", "0"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_demo_runs_and_summarises() {
    let out = floodgate(&["demo", "--seconds", "4"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        "enqueued 2680 webhook jobs",
        "dashboard: http://127.0.0.1:",
        "destination gone answered 410 Gone",
        "| fast",
        "delivery latency",
    ] {
        assert!(shown.contains(expected), "{expected:?} missing:\n{shown}");
    }
}
