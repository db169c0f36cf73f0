//! The server's integration tests, in one binary (one link of the whole server, not one per
//! file), with one support module:
//!
//! * `api`: the HTTP API through `app()` with `oneshot` (no socket): every route, every error
//!   case, tokens on every route, long polls, overload, batch reports, body deadlines;
//! * `dashboard` and `browser`: the dashboard's endpoints, and the page in headless Chromium;
//! * `webhook`: delivery end to end against local targets, destinations isolated;
//! * `cli`: the command line as a user runs it;
//! * `process`: the real binary as separate processes (SIGTERM under load, two nodes, half-sent
//!   requests, the client packages' own suites).
//!
//! Tests that load the machine (separate processes, load) share it through
//! `support::process::shared_machine`; one that measures latency holds it alone
//! (`whole_machine`).

mod support;

mod api;
mod browser;
mod cli;
mod dashboard;
mod process;
mod webhook;
