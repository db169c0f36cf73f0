//! `floodgate serve`: open the store, serve the API, run maintenance (rescue of expired
//! leases, retention) on whichever node leads, and shut down gracefully on SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::process::ExitCode;

use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use super::ServeArgs;
use crate::config::{Config, LogFormat, mask_url};
use crate::server::Server;

pub(super) fn run(args: &ServeArgs) -> ExitCode {
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // `RUST_LOG` wins when it parses; `log` was checked with the rest of the settings.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| config.log.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // Colour only on a terminal: a file or a pipe gets plain text, or JSON lines for shippers.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    if config.log_format == LogFormat::Json {
        registry.with(fmt.json().with_current_span(true)).init();
    } else {
        registry.with(fmt).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let mut builder = Server::builder(config.clone());
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => builder = builder.metrics(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty")
        }
    }
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    announce(&config, server.addr(), server.state().store().backend());
    match server.run_until_signal().await {
        Ok(report) => {
            tracing::info!(?report, "stopped");
            ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: cannot listen for signals: {e}");
            ExitCode::FAILURE
        }
    }
}

fn announce(config: &Config, addr: std::net::SocketAddr, backend: &str) {
    let url = format!("http://{addr}");
    if config.log_format == LogFormat::Json {
        // Standard output is for the log shipper: one JSON object per line, nothing else.
        let database = mask_url(&config.database_url);
        tracing::info!(%url, backend, %database, "floodgate listening");
        return;
    }
    println!(
        "floodgate listening on {url} ({backend}: {})",
        mask_url(&config.database_url)
    );
    println!("  dashboard: {url}/");
    println!("  enqueue:  curl -X POST {url}/v1/jobs -H 'content-type: application/json' \\");
    println!(
        "              -d '{{\"kind\": \"email\", \"payload\": {{\"to\": \"ada@example.com\"}}}}'"
    );
    println!("  status:   curl {url}/v1/jobs/1");
    println!(
        "  claim:    curl -X POST {url}/v1/queues/default/claim -H 'content-type: application/json' -d '{{\"worker\": \"w1\", \"wait\": 10}}'"
    );
    println!(
        "  queues:   curl {url}/v1/queues      docs: {url}/openapi.json      metrics: {url}/metrics"
    );
    if !config.limiters.is_empty() || !config.rate_limits.is_empty() || !config.breakers.is_empty()
    {
        println!("  limits:   curl {url}/v1/limiters   {url}/v1/rate-limits   {url}/v1/breakers");
    }
    if config.auth_enabled() {
        println!("  (tokens are configured: add -H 'authorization: Bearer <token>')");
    }
}
