//! [`Server`]: the whole of `floodgate serve` as one value that owns its lifecycle. One
//! builder from a [`Config`] (plus overrides for tests and tools: a store, a listener, a
//! metrics handle, the node's name) opens the store, starts every background task (delivery
//! workers, maintenance on whichever node leads, the dashboard's sampler, the wake-up hub, the
//! batchers), and serves. Shutdown runs in order: stop accepting and answer long polls at once,
//! finish the requests in flight (up to `shutdown_grace`), put back the jobs HTTP workers still
//! hold, stop delivery and maintenance, stop the sampler and the hub, close the store.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_server::config::Config;
//! use floodgate_server::server::Server;
//!
//! let config = Config { listen: "127.0.0.1:0".parse()?, ..Config::default() };
//! let store = floodgate_queue::SqliteStore::in_memory().await?;
//! let server = Server::builder(config).store(store.into()).start().await?;
//! println!("listening on {}", server.addr());
//! let report = server.shutdown().await;
//! assert!(report.is_clean());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use floodgate::shutdown::{Shutdown, ShutdownReport};
use floodgate_queue::maintenance::Maintenance;
use floodgate_queue::worker::WorkerHandle;
use floodgate_queue::{AnyStore, Singleton, StoreError};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::connections::{self, ConnectionStats, Connections, Limits};
use crate::delivery::engine::EngineError;
use crate::state::AppState;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be listened on.
    #[error(
        "cannot listen on {addr}: {source} (is another server using it? choose another with \
         --listen)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A delivery worker could not start.
    #[error(transparent)]
    Delivery(#[from] EngineError),
    /// A delivery target's destination is not fit (a relay's stream or exchange).
    #[error("{0}")]
    Destination(String),
}

/// Builds a [`Server`]; see the [module docs](self).
#[derive(Debug)]
pub struct ServerBuilder {
    config: Config,
    store: Option<AnyStore>,
    listener: Option<TcpListener>,
    metrics: Option<PrometheusHandle>,
    node: Option<String>,
    delivery: bool,
}

/// A running server; see the [module docs](self).
pub struct Server {
    state: AppState,
    addr: SocketAddr,
    node: String,
    connections: Connections,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder with `config` (checked when the server starts).
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            store: None,
            listener: None,
            metrics: None,
            node: None,
            delivery: true,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state its handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// This node's name (in worker ids and the maintenance lease).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its connections now.
    pub fn connections(&self) -> ConnectionStats {
        self.connections.stats()
    }

    /// Shuts down now, in order (see the [module docs](self)).
    ///
    /// # Cancel safety
    ///
    /// Dropped, the shutdown goes on in the background tasks it started.
    pub async fn shutdown(self) -> ShutdownReport {
        self.shutdown.trigger();
        self.shutdown.run().await
    }

    /// Waits for SIGTERM or SIGINT (a second one exits at once), then shuts down in order.
    ///
    /// # Errors
    ///
    /// When the signal handlers cannot be installed.
    pub async fn run_until_signal(self) -> std::io::Result<ShutdownReport> {
        self.shutdown.listen_for_signals()?;
        Ok(self.shutdown.run_on_signal().await)
    }
}

impl ServerBuilder {
    /// Serves `store` instead of opening `database_url` (tests, tools).
    pub fn store(mut self, store: AnyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves on `listener` instead of binding `listen`.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serves `/metrics` from `handle` (the process's installed Prometheus recorder).
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// This node's name (default `$HOSTNAME-pid`).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Serves without starting the delivery workers (a tool that starts them itself, when it
    /// wants, through [`AppState::deliveries`]).
    pub fn without_delivery(mut self) -> Self {
        self.delivery = false;
        self
    }

    /// Opens the store, starts every background task and serves. Must run inside a Tokio
    /// runtime; the server's tasks run on it.
    ///
    /// # Errors
    ///
    /// A bad setting, a store that cannot be opened, an address that cannot be listened on,
    /// a delivery worker that cannot start. Nothing is left running then.
    pub async fn start(self) -> Result<Server, ServerError> {
        let config = self.config;
        config.validate()?;
        let store = match self.store {
            Some(store) => store,
            None => crate::state::open_store(&config).await?,
        };
        let listener = match self.listener {
            Some(listener) => listener,
            None => match connections::bind(config.listen) {
                Ok(listener) => listener,
                Err(source) => {
                    store.close().await;
                    return Err(ServerError::Listen {
                        addr: config.listen,
                        source,
                    });
                }
            },
        };
        let addr = listener.local_addr().unwrap_or(config.listen);
        let node = self.node.unwrap_or_else(|| {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "floodgate".to_owned()),
                std::process::id()
            )
        });
        let state = AppState::new(store.clone(), config.clone());
        if let Some(handle) = self.metrics {
            state.set_metrics(handle);
        }
        // Every destination is checked before any worker starts (a relay's stream or
        // exchange must exist).
        for delivery in state.deliveries().iter().filter(|_| self.delivery) {
            if let Err(reason) = delivery.check().await {
                state.stop_background();
                store.close().await;
                return Err(ServerError::Destination(reason));
            }
        }
        let mut deliveries: Vec<WorkerHandle> = Vec::new();
        for delivery in state.deliveries().iter().filter(|_| self.delivery) {
            let slots = config.webhooks.concurrency;
            match delivery.clone().start(store.clone(), &node, slots) {
                Ok(handle) => deliveries.push(handle),
                Err(e) => {
                    for started in deliveries {
                        started.shutdown(Duration::ZERO).await;
                    }
                    state.stop_background();
                    store.close().await;
                    return Err(e.into());
                }
            }
        }
        let role = Singleton::lease(store.clone(), "maintenance", &node, Duration::from_secs(30));
        let maintenance = Maintenance::new(store.clone())
            .rescue_every(config.rescue_interval)
            .start(role);
        // The charts have the last 15 minutes when a dashboard opens.
        state.dashboard().start();

        let shutdown = Shutdown::new(config.shutdown_grace);
        shutdown.close_on_shutdown(state.requests());
        let connections = Connections::new(Limits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
        });
        let token = shutdown.token();
        shutdown.tracker().spawn({
            let state = state.clone();
            let token = token.clone();
            async move {
                token.cancelled().await;
                // Long polls answer now, so the drain is not held up by them.
                state.shutting_down().cancel();
            }
        });
        shutdown.tracker().spawn({
            let (connections, app) = (connections.clone(), crate::app(state.clone()));
            async move { connections.serve(listener, app, token).await }
        });
        shutdown.on_shutdown(
            "put back leases, stop delivery and maintenance, close the store",
            {
                let state = state.clone();
                move || async move {
                    let released = state.leases().release_all(state.store()).await;
                    tracing::info!(released, "leases held by HTTP workers put back");
                    for delivery in deliveries {
                        delivery.shutdown(Duration::from_secs(5)).await;
                    }
                    maintenance.stop().await;
                    state.stop_background();
                    state.store().close().await;
                    Ok::<_, std::convert::Infallible>(())
                }
            },
        );
        Ok(Server {
            state,
            addr,
            node,
            connections,
            shutdown,
        })
    }
}
