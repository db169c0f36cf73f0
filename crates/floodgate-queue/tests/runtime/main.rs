//! The runtime around the store, end to end: roles and their failover, maintenance under the
//! leader, the inbox's exactly-once effects, the cluster-wide kind limit and the metrics. One
//! test binary of modules (linking one binary instead of five), on the queue test layer
//! (`tests/support/`). Tests that need a process of their own stay apart: `memory_watch.rs`
//! (measures this process's memory) and `crash.rs` (kills child processes of itself).
#![allow(unreachable_pub)]

#[path = "../support/mod.rs"]
mod support;

mod claim_ahead;
mod cluster_limit;
mod held_jobs;
mod inbox;
mod leader;
#[cfg(feature = "postgres")]
mod listen_drop;
mod maintenance;
#[cfg(feature = "sqlite")]
mod metric_labels;
#[cfg(all(feature = "sqlite", feature = "nats", feature = "rabbitmq"))]
mod relay;
mod takeover;
