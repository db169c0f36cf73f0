//! The client packages' own test suites, run against this build's binary: the TypeScript
//! client's (`node --test`, through `npm test`), the Python client's (pytest, in a virtual
//! environment under `target/`), and the TypeScript outbox example's (200 transfers, a worker
//! killed with SIGKILL, each applied exactly once). Each suite starts its own servers; this only provides the
//! binary (`FLOODGATE_BIN`), the tools, and the database settings.
//!
//! A missing `node`, `npm` or `python3` skips with the reason, or fails under
//! `FLOODGATE_REQUIRE_SERVICES=1` (CI installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support::process::{BIN, shared_machine};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether a missing tool fails the test rather than skipping it.
fn required() -> bool {
    matches!(
        std::env::var("FLOODGATE_REQUIRE_SERVICES").as_deref(),
        Ok("1" | "true")
    )
}

/// `Some(())` when `tool --version` runs; otherwise skips (prints why) or fails.
fn have(tool: &str) -> Option<()> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => Some(()),
        other => {
            let why = format!("skipped: {tool} is not usable ({other:?})");
            assert!(!required(), "{why}, and FLOODGATE_REQUIRE_SERVICES=1");
            eprintln!("{why}");
            None
        }
    }
}

/// Runs `command`, printing its output; panics with it when the command fails.
fn run(what: &str, command: &mut Command) -> Output {
    // No settings from the tests' environment reach the servers the suites start.
    for (key, _) in std::env::vars() {
        if key.starts_with("FLOODGATE_") && key != "FLOODGATE_REQUIRE_SERVICES" {
            command.env_remove(key);
        }
    }
    let out = command
        .env("FLOODGATE_BIN", BIN)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{what}:\n{text}");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    out
}

/// The Python virtual environment with the client package (editable) and its test
/// dependencies, made once per test run; its `python`.
pub(super) fn python_venv() -> Option<PathBuf> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        have("python3")?;
        let venv = root().join("target/python-client-venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            run(
                "python3 -m venv",
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
            );
        }
        run(
            "pip install clients/python[test]",
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "-e",
                ])
                .arg(format!("{}[test]", root().join("clients/python").display())),
        );
        Some(python)
    })
    .clone()
}

/// `npm ci` then `npm test` in `dir` (a package of this repository), when Node.js is here.
fn npm_suite(dir: &str) {
    let _machine = shared_machine();
    if have("node").is_none() || have("npm").is_none() {
        return;
    }
    let dir = root().join(dir);
    run(
        &format!("npm ci ({})", dir.display()),
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
    );
    run(
        &format!("npm test ({})", dir.display()),
        Command::new("npm").arg("test").current_dir(&dir),
    );
}

#[test]
fn the_typescript_client_suite_passes() {
    npm_suite("clients/typescript");
}

#[test]
fn the_typescript_transfer_example_passes() {
    npm_suite("examples/typescript/transfer");
}

#[test]
fn the_python_client_suite_passes() {
    let _machine = shared_machine();
    let Some(python) = python_venv() else {
        return;
    };
    run(
        "pytest clients/python",
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(root().join("clients/python")),
    );
}
