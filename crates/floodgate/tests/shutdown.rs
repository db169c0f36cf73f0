//! Graceful shutdown: phases in order, drain timeout, isolated hooks, and real signals sent to
//! a child process (this same test binary, re-run in child mode).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use floodgate::Limiter;
use floodgate::shutdown::{HookFailure, Shutdown};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn stops_admitting_drains_then_runs_hooks() {
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let limiter = Limiter::new(4);
    shutdown.close_on_shutdown(&limiter);
    let token = shutdown.token();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    shutdown.tracker().spawn(async move {
        token.cancelled().await;
        sleep(Duration::from_secs(1)).await;
        f.store(true, SeqCst);
    });
    let f = finished.clone();
    let hook_saw_drained = Arc::new(AtomicBool::new(false));
    let h = hook_saw_drained.clone();
    shutdown.on_shutdown("check", move || async move {
        h.store(f.load(SeqCst), SeqCst);
        Ok::<_, String>(())
    });
    let start = Instant::now();
    let report = shutdown.run().await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.exit_code(), 0);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(hook_saw_drained.load(SeqCst), "hooks run after the drain");
    assert!(limiter.is_closed());
    assert_eq!(report.hooks_succeeded, vec!["check"]);
}

#[tokio::test(start_paused = true)]
async fn a_drain_timeout_reports_the_unfinished_work() {
    let shutdown = Shutdown::new(Duration::from_secs(2));
    for _ in 0..3 {
        shutdown.tracker().spawn(sleep(Duration::from_secs(60)));
    }
    shutdown.tracker().spawn(async {});
    let report = shutdown.run().await;
    assert!(!report.drained);
    assert_eq!(report.unfinished, 3);
    assert_eq!(report.exit_code(), 1);
    assert!(
        report
            .to_string()
            .starts_with("timed out with 3 unfinished tasks")
    );
}

#[tokio::test(start_paused = true)]
async fn every_hook_runs_and_each_failure_is_reported() {
    let shutdown = Shutdown::new(Duration::from_secs(1)).hook_timeout(Duration::from_secs(3));
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    shutdown.on_shutdown("flush-analytics", || async {
        Err::<(), _>("connection refused")
    });
    shutdown.on_shutdown("close-cache", || async {
        panic!("cache already closed");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    });
    shutdown.on_shutdown("stuck", || async {
        sleep(Duration::from_secs(3600)).await;
        Ok::<(), String>(())
    });
    shutdown.on_shutdown("close-db", move || async move {
        r.store(true, SeqCst);
        Ok::<(), String>(())
    });
    let start = Instant::now();
    let report = shutdown.run().await;
    assert!(ran.load(SeqCst), "the healthy hook still ran");
    assert_eq!(report.hooks_succeeded, vec!["close-db"]);
    assert_eq!(
        report.hooks_failed,
        vec![
            HookFailure {
                name: "flush-analytics".into(),
                error: "connection refused".into()
            },
            HookFailure {
                name: "close-cache".into(),
                error: "panicked: cache already closed".into()
            },
            HookFailure {
                name: "stuck".into(),
                error: "timed out after 3s".into()
            },
        ]
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "hooks ran concurrently"
    );
    assert_eq!(report.exit_code(), 1);
}

// ---- real signals -------------------------------------------------------------------------

const CHILD_ENV: &str = "FLOODGATE_SHUTDOWN_CHILD";

/// In child mode (set by the signal tests), runs a program that shuts down on SIGTERM and
/// exits with the report's status. Otherwise checks `trigger` in-process, so the entry point
/// is an honest test on its own.
#[test]
fn shutdown_child_entry() {
    let mode = std::env::var(CHILD_ENV).ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(async move {
        let shutdown = Shutdown::new(Duration::from_secs(if mode.as_deref() == Some("stuck") {
            60
        } else {
            5
        }));
        let token = shutdown.token();
        let stuck = mode.as_deref() == Some("stuck");
        shutdown.tracker().spawn(async move {
            token.cancelled().await;
            sleep(Duration::from_millis(if stuck { 60_000 } else { 200 })).await;
        });
        if mode.as_deref() == Some("failing_hook") {
            shutdown.on_shutdown("flush-analytics", || async {
                Err::<(), _>("connection refused")
            });
        }
        shutdown.on_shutdown("close-db", || async { Ok::<(), String>(()) });
        match &mode {
            Some(_) => {
                shutdown.listen_for_signals().unwrap();
                println!("ready");
                let report = shutdown.run_on_signal().await;
                println!("report: {report}");
                Some(report.exit_code())
            }
            None => {
                shutdown.trigger();
                let report = shutdown.run_on_signal().await;
                assert!(report.is_clean());
                assert_eq!(report.signal, None);
                None
            }
        }
    });
    if let Some(code) = code {
        std::process::exit(code);
    }
}

struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn spawn_child(mode: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shutdown_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("ready") {
            break;
        }
    }
    Child { child, lines }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn finish(mut c: Child) -> (i32, String) {
    let status = c.child.wait().unwrap();
    let rest: Vec<String> = c.lines.map_while(Result::ok).collect();
    (status.code().unwrap_or(-1), rest.join("\n"))
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let child = spawn_child("clean");
    signal(&child, "TERM");
    let (code, out) = finish(child);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("report: drained cleanly"), "{out}");
    assert!(
        out.contains("report: drained cleanly; 1 hooks succeeded"),
        "{out}"
    );
}

#[test]
fn a_failing_hook_exits_one_and_names_the_hook() {
    let child = spawn_child("failing_hook");
    signal(&child, "INT");
    let (code, out) = finish(child);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hook flush-analytics failed: connection refused"),
        "{out}"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let child = spawn_child("stuck");
    let start = std::time::Instant::now();
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let (code, _) = finish(child);
    assert_eq!(code, 130);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "did not wait for the 60 s drain"
    );
}
