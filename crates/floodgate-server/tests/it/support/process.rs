//! Helpers for tests of the real binary: start `floodgate serve` on a free port, and a tiny
//! HTTP/1.1 client over `std::net::TcpStream` (`Connection: close`), so the tests see exactly
//! what any client sees.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_floodgate");
pub const WORKER_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/python/worker.py"
);

/// The machine these tests share: a test that measures latency holds it alone, the others
/// share it (two cores loaded by a SIGTERM-under-load test are not the server's latency).
static MACHINE: RwLock<()> = RwLock::new(());

/// A share of the machine, for a test that measures no latency.
pub fn shared_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|p| p.into_inner())
}

/// The whole machine, for a test that measures latency.
pub fn whole_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|p| p.into_inner())
}

/// A running `floodgate serve`, killed when dropped (its log is printed if the test failed).
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Starts a server on a free port and waits (up to 20 s) for `/health/ready` to answer 200.
    pub fn start(database_url: &str, dir: &Path) -> Server {
        Server::start_with(database_url, dir, &[])
    }

    /// [`Server::start`] with more arguments (`--config PATH`, say).
    pub fn start_with(database_url: &str, dir: &Path, extra: &[&str]) -> Server {
        let mut why = String::new();
        // Three tries, in case another process takes the free port before the server does.
        for _ in 0..3 {
            let port = free_port();
            let log = dir.join(format!("server-{port}.log"));
            let mut command = Command::new(BIN);
            command
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--database-url", database_url])
                .args(extra)
                .current_dir(dir);
            // No settings from the tests' environment (a token, another database).
            for (key, _) in std::env::vars() {
                if key.starts_with("FLOODGATE_") {
                    command.env_remove(key);
                }
            }
            let child = command
                .env("FLOODGATE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create the server's log"))
                .spawn()
                .expect("start floodgate serve");
            let mut server = Server { child, port, log };
            if server.wait_ready(Duration::from_secs(20)) {
                return server;
            }
            why = std::fs::read_to_string(&server.log).unwrap_or_default();
        }
        panic!("floodgate serve did not become ready; its log:\n{why}");
    }

    pub fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok((200, _)) = try_http("GET", self.port, "/health/ready", None) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends SIGTERM and waits (up to 30 s) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        wait_with_limit(&mut self.child, Duration::from_secs(30))
            .expect("the server exits within 30 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- log of the server on port {} ---\n{log}", self.port);
        }
    }
}

/// A port nothing listens on now (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
}

pub fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 20 ms for up to `limit`: how long it took to pass, or a failure with
/// the last thing it saw. The blocking twin of the async `support::eventually`.
pub fn within<T: std::fmt::Debug>(
    limit: Duration,
    mut check: impl FnMut() -> Result<(), T>,
) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(seen) if start.elapsed() > limit => panic!("not within {limit:?}: {seen:?}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub type Answer = (u16, Value);

/// One HTTP/1.1 request: the status and the body as JSON (`Null` when empty, a JSON string
/// when it is not JSON), or the I/O error that left it unanswered.
pub fn try_http(method: &str, port: u16, path: &str, body: Option<&Value>) -> io::Result<Answer> {
    try_http_full(method, port, path, body).map(|(status, _, body)| (status, body))
}

/// [`try_http`] with the answer's header fields (names lower-cased).
pub fn try_http_full(
    method: &str,
    port: u16,
    path: &str,
    body: Option<&Value>,
) -> io::Result<(u16, HashMap<String, String>, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let length = body.len();
    // One write: several small ones can stall on Nagle's algorithm and delayed ACKs.
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&*response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
    let status = status.ok_or_else(|| io::Error::other(format!("no status in {head:?}")))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let value = match body.trim() {
        "" => Value::Null,
        text => serde_json::from_str(text).unwrap_or_else(|_| Value::from(text)),
    };
    Ok((status, headers, value))
}

/// [`try_http`], panicking when there is no answer.
pub fn http(method: &str, port: u16, path: &str, body: Option<&Value>) -> Answer {
    try_http(method, port, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Enqueues one job; its id.
pub fn enqueue(port: u16, job: Value) -> i64 {
    let (status, body) = http("POST", port, "/v1/jobs", Some(&job));
    assert_eq!(status, 202, "enqueue {job}: {body}");
    body["id"].as_i64().expect("an id")
}

/// The counts of `queue` from `GET /v1/queues` (`Null` when the queue is not listed).
pub fn counts(port: u16, queue: &str) -> Value {
    let (status, body) = http("GET", port, "/v1/queues", None);
    assert_eq!(status, 200, "{body}");
    body["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == queue))
        .map_or(Value::Null, |q| q["counts"].clone())
}
