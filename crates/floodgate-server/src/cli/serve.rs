//! `floodgate serve`: open the store, serve the API, run maintenance (rescue of expired
//! leases, retention) on whichever node leads, and shut down gracefully on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use floodgate::shutdown::Shutdown;
use floodgate_queue::Singleton;
use floodgate_queue::maintenance::Maintenance;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

use super::ServeArgs;
use crate::config::{Config, mask_url};
use crate::connections::{Connections, Limits};
use crate::state::AppState;

pub(super) fn run(args: &ServeArgs) -> ExitCode {
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
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
    let shutdown = Shutdown::new(config.shutdown_grace);
    if let Err(e) = shutdown.listen_for_signals() {
        eprintln!("error: cannot listen for signals: {e}");
        return ExitCode::FAILURE;
    }
    let metrics = PrometheusBuilder::new().install_recorder();
    let state = match AppState::open(config.clone()).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = match metrics {
        Ok(handle) => state.with_metrics(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            state
        }
    };
    let listener = match crate::connections::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e} (is another server using it? choose another \
                 with --listen)",
                config.listen
            );
            state.store().close().await;
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    let node = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "floodgate".to_owned()),
        std::process::id()
    );
    let role = Singleton::lease(
        state.store().clone(),
        "maintenance",
        &node,
        Duration::from_secs(30),
    );
    let maintenance = Maintenance::new(state.store().clone()).start(role);
    let mut deliveries = Vec::new();
    for delivery in state.deliveries().iter() {
        let slots = config.webhooks.concurrency;
        match delivery.clone().start(state.store().clone(), &node, slots) {
            Ok(handle) => deliveries.push(handle),
            Err(e) => {
                eprintln!("error: cannot start delivery: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The charts have the last 15 minutes when a dashboard opens.
    state.dashboard().start();
    announce(&config, addr, state.store().backend());

    shutdown.close_on_shutdown(state.requests());
    let token = shutdown.token();
    let connections = Connections::new(Limits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
    });
    let app = crate::app(state.clone());
    shutdown.tracker().spawn({
        let state = state.clone();
        let token = token.clone();
        async move {
            token.cancelled().await;
            // Long polls answer now, so the drain is not held up by them.
            state.shutting_down().cancel();
        }
    });
    shutdown
        .tracker()
        .spawn(async move { connections.serve(listener, app, token).await });
    shutdown.on_shutdown("release leases, stop maintenance, close the store", {
        let state = state.clone();
        move || async move {
            for delivery in deliveries {
                delivery.shutdown(Duration::from_secs(5)).await;
            }
            let released = state.leases().release_all(state.store()).await;
            tracing::info!(released, "leases held by HTTP workers put back");
            maintenance.stop().await;
            state.store().close().await;
            Ok::<_, String>(())
        }
    });
    let report = shutdown.run_on_signal().await;
    tracing::info!(?report, "stopped");
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}

fn announce(config: &Config, addr: std::net::SocketAddr, backend: &str) {
    let url = format!("http://{addr}");
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
    if config.auth_enabled() {
        println!("  (tokens are configured: add -H 'authorization: Bearer <token>')");
    }
}
