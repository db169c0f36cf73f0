//! What an operator reads: log lines on a pipe carry no colour codes, `log_format = "json"`
//! writes one JSON object per line, and a request's id (the client's `x-request-id`, echoed in
//! the answer) is on every line logged while the request runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::process::{BIN, free_port, shared_machine, try_http, wait_with_limit};

/// Runs `floodgate serve` with a limiter and `env`, sends one `PUT /v1/limiters/llm` (which
/// logs "limit changed") with `x-request-id: req-abc-123`, stops it, and returns the answer's
/// head and everything the server wrote to standard output.
fn serve_one_request(env: &[(&str, &str)]) -> (String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("fg.toml");
    std::fs::write(&config, "[limiters.llm]\nmax_concurrency = 1\n").expect("write settings");
    let out = dir.path().join("stdout.log");
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--database-url",
            dir.path().join("a.db").to_str().expect("UTF-8"),
        ])
        .args(["--config", config.to_str().expect("UTF-8")]);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLOODGATE_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let mut child = command
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&out).expect("create the log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start floodgate serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(try_http("GET", port, "/health/ready", None), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = r#"{"max_concurrency": 2}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "PUT /v1/limiters/llm HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-request-id: req-abc-123\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    wait_with_limit(&mut child, Duration::from_secs(30)).expect("the server exits on SIGTERM");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    (head, std::fs::read_to_string(&out).expect("the log"))
}

#[test]
fn logs_on_a_pipe_are_plain_or_json_and_carry_the_request_id() {
    let _machine = shared_machine();
    let (head, text) = serve_one_request(&[("FLOODGATE_LOG", "info")]);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-request-id: req-abc-123"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(!text.contains('\u{1b}'), "colour codes on a pipe:\n{text}");
    let line = text.lines().find(|l| l.contains("limit changed"));
    let line = line.unwrap_or_else(|| panic!("no 'limit changed' line:\n{text}"));
    assert!(line.contains("request_id=req-abc-123"), "{line}");

    let (_, json) =
        serve_one_request(&[("FLOODGATE_LOG", "info"), ("FLOODGATE_LOG_FORMAT", "json")]);
    let lines: Vec<Value> = json
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "floodgate listening");
    assert!(
        listening.is_some(),
        "the start-up line is JSON too:\n{json}"
    );
    // The server's own line (the limiter primitive logs one too, under its own name); every
    // line logged during the request carries its id.
    for line in lines
        .iter()
        .filter(|l| l["fields"]["message"] == "limit changed")
    {
        assert_eq!(line["span"]["request_id"], "req-abc-123", "{line}");
    }
    let changed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "limit changed" && l["fields"]["limiter"] == "llm");
    let changed = changed.unwrap_or_else(|| panic!("no 'limit changed' object:\n{json}"));
    assert_eq!(changed["span"]["request_id"], "req-abc-123", "{changed}");
    assert_eq!(changed["fields"]["limiter"], "llm", "{changed}");
}
