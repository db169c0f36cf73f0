//! The command line: `floodgate serve`, `floodgate config`, and client subcommands that talk
//! to a running server (`enqueue`, `status`, `jobs`, `retry`, `cancel`, `queues`, `pause`,
//! `resume`): tables for people, `--json` for scripts, a non-zero exit status on error.

mod bench;
mod client;
mod demo;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

/// floodgate: a durable job queue and the concurrency primitives around it.
#[derive(Debug, Parser)]
#[command(name = "floodgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by `serve` and `config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A TOML file of settings (overridden by FLOODGATE_* variables and flags).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A SQLite file path or a postgres:// URL [default: floodgate.db].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The address to listen on [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

impl ServeArgs {
    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let overrides = Overrides {
            listen: self.listen,
            database_url: self.database_url.clone(),
        };
        Config::load(self.config.as_deref(), &overrides)
    }
}

/// How client subcommands reach the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server's URL.
    #[arg(
        long,
        env = "FLOODGATE_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub server: String,
    /// The API token (sent as a bearer token).
    #[arg(
        long,
        env = "FLOODGATE_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print the effective configuration (secrets masked).
    Config(ServeArgs),
    /// Enqueue and drain no-op jobs through the worker runtime; print jobs/s and latency.
    Bench(bench::BenchArgs),
    /// A 30-second tour: webhooks delivered to a misbehaving local target.
    Demo {
        /// How long the tour runs, in seconds.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Enqueue a job.
    Enqueue {
        /// Its kind.
        #[arg(long)]
        kind: String,
        /// Its payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
        /// Its queue.
        #[arg(long)]
        queue: Option<String>,
        /// Its priority, 1..=10.
        #[arg(long)]
        priority: Option<u8>,
        /// Run at (RFC 3339).
        #[arg(long)]
        run_at: Option<String>,
        /// A key that makes a repeat return the first job.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job.
    Status {
        /// The job's id.
        id: i64,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List jobs, newest first.
    Jobs {
        /// Only this state.
        #[arg(long)]
        state: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a dead or cancelled job again.
    Retry {
        /// The job's id.
        id: i64,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        id: i64,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show every queue's counts.
    Queues {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop claims from a queue.
    Pause {
        /// The queue.
        queue: String,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Let claims take from a queue again.
    Resume {
        /// The queue.
        queue: String,
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs `task` on a new runtime (one thread for a client call, all cores otherwise): exit
/// status 0 when it succeeds, 1 with its error on stderr when it fails.
fn run_to_exit<F, E>(multi_thread: bool, task: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs it; the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Config(args) => match args.load() {
            Ok(config) => {
                print!("{}", config.masked_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Bench(args) => bench::run(&args),
        Command::Demo { seconds } => demo::run(seconds),
        other => client::run(other),
    }
}
