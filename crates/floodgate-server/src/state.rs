//! What every handler shares: the store, the settings, the enqueue batcher (group commit),
//! the wake-up hub for long-polling claims, the book of leases handed to HTTP workers, and the
//! metrics handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_server::{app, config::Config, state::AppState};
//!
//! let state = AppState::open(Config::default()).await?; // opens ./floodgate.db
//! let router = app(state);
//! # let _ = router; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Instant;

use floodgate::Limiter;
use floodgate_queue::store::Backend;
use floodgate_queue::{AnyStore, PgStore, SqliteStore, StoreError};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::batcher::{Completer, Enqueuer};
use crate::config::Config;
use crate::dashboard::Dashboard;
use crate::delivery::{Deliveries, Delivery};
use crate::groups::PausedGroups;
use crate::hub::WakeHub;
use crate::leases::LeaseBook;
use crate::limits::Limits;
use crate::sampler::QueueSampler;

/// The server's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: AnyStore,
    config: Config,
    enqueuer: Enqueuer,
    completer: Completer,
    hub: WakeHub,
    leases: LeaseBook,
    sampler: Arc<QueueSampler>,
    deliveries: Deliveries,
    webhooks: Arc<dyn Delivery>,
    dashboard: Arc<Dashboard>,
    paused_groups: Arc<PausedGroups>,
    limits: Arc<Limits>,
    requests: Limiter,
    /// Long-polling claims waiting (`max_long_polls`).
    long_polls: Limiter,
    /// Dashboard event streams open (`max_event_streams`).
    streams: Limiter,
    metrics: std::sync::OnceLock<PrometheusHandle>,
    /// Cancelled when the server stops: the wake-up hub and the dashboard's sampler end.
    background: CancellationToken,
    shutting_down: CancellationToken,
    started: Instant,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.inner.store.backend())
            .field("listen", &self.inner.config.listen)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the store `config.database_url` names (SQLite file or PostgreSQL) with the
    /// server's settings, and builds the state around it.
    pub async fn open(config: Config) -> Result<AppState, StoreError> {
        let store = open_store(&config).await?;
        Ok(AppState::new(store, config))
    }

    /// The state around an open store. Starts the enqueue batcher and the wake-up hub on the
    /// current runtime.
    pub fn new(store: AnyStore, config: Config) -> AppState {
        let sampler = Arc::new(QueueSampler::new(store.clone(), config.queue_stats_max_age));
        let paused_groups = Arc::new(PausedGroups::new(
            store.clone(),
            std::time::Duration::from_secs(1),
        ));
        let webhooks: Arc<dyn Delivery> = Arc::new(
            crate::webhook::engine(&config.webhooks, store.clone(), paused_groups.clone())
                .expect("the webhook settings were validated"),
        );
        let mut deliveries = Deliveries::default().with(webhooks.clone());
        for (name, relay) in &config.relays {
            let engine = crate::relay::engine(
                name,
                relay,
                config.rescue_interval,
                store.clone(),
                paused_groups.clone(),
            )
            .expect("the relay settings were validated");
            deliveries = deliveries.with(Arc::new(engine));
        }
        let limits = Arc::new(Limits::from_config(&config).expect("the limits were validated"));
        let enqueuer = Enqueuer::start(store.clone());
        let completer = Completer::start(store.clone());
        let background = CancellationToken::new();
        let hub = WakeHub::start(store.clone(), background.clone());
        limits.start(background.clone());
        let requests = Limiter::builder()
            .name("http")
            .max_concurrency(config.max_concurrent_requests)
            .max_queue(0)
            .build()
            .expect("max_concurrent_requests was validated");
        let bound = |name: &str, n: usize| {
            Limiter::builder()
                .name(name)
                .max_concurrency(n)
                .max_queue(0)
                .build()
                .expect("validated at load")
        };
        let long_polls = bound("http_long_polls", config.max_long_polls);
        let streams = bound("http_event_streams", config.max_event_streams);
        let dashboard = Dashboard::new(crate::dashboard::Sources {
            store: store.clone(),
            sampler: sampler.clone(),
            deliveries: deliveries.clone(),
            requests: requests.clone(),
            limits: limits.clone(),
            stop: background.clone(),
        });
        AppState {
            inner: Arc::new(Inner {
                store,
                config,
                enqueuer,
                completer,
                hub,
                leases: LeaseBook::default(),
                sampler,
                deliveries,
                webhooks,
                dashboard,
                paused_groups,
                limits,
                requests,
                long_polls,
                streams,
                metrics: std::sync::OnceLock::new(),
                background,
                shutting_down: CancellationToken::new(),
                started: Instant::now(),
            }),
        }
    }

    /// Serves `/metrics` from `handle` (the process's installed Prometheus recorder); a
    /// second handle is ignored.
    pub fn set_metrics(&self, handle: PrometheusHandle) {
        if self.inner.metrics.set(handle).is_err() {
            tracing::warn!("a metrics handle was already set; keeping the first");
        }
    }

    /// Stops the background tasks (the wake-up hub, the dashboard's sampler): before the
    /// store closes.
    pub fn stop_background(&self) {
        self.inner.background.cancel();
    }

    /// The job store.
    pub fn store(&self) -> &AnyStore {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn enqueuer(&self) -> &Enqueuer {
        &self.inner.enqueuer
    }

    pub(crate) fn completer(&self) -> &Completer {
        &self.inner.completer
    }

    pub(crate) fn hub(&self) -> &WakeHub {
        &self.inner.hub
    }

    /// The leases handed to HTTP workers and not yet finished.
    pub fn leases(&self) -> &LeaseBook {
        &self.inner.leases
    }

    /// The queue counts' sampler.
    pub fn sampler(&self) -> &Arc<QueueSampler> {
        &self.inner.sampler
    }

    /// The delivery targets: the server's built-in job kinds.
    pub fn deliveries(&self) -> &Deliveries {
        &self.inner.deliveries
    }

    /// Webhook delivery (its destinations, breakers and disabled set).
    pub fn webhooks(&self) -> &Arc<dyn Delivery> {
        &self.inner.webhooks
    }

    /// The store's paused groups, read at most once a second: HTTP workers' claims skip them,
    /// and delivery learns from them what another node disabled or enabled. Every pause,
    /// resume and enable on this node forgets the list at once.
    pub fn paused_groups(&self) -> &PausedGroups {
        &self.inner.paused_groups
    }

    /// The dashboard's sampler.
    pub fn dashboard(&self) -> &Arc<Dashboard> {
        &self.inner.dashboard
    }

    /// The named limiters, rate limits and breakers of the settings.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The limiter of requests in flight (closed at shutdown).
    pub fn requests(&self) -> &Limiter {
        &self.inner.requests
    }

    /// The bound on long-polling claims waiting at once.
    pub fn long_polls(&self) -> &Limiter {
        &self.inner.long_polls
    }

    /// The bound on dashboard event streams open at once.
    pub fn streams(&self) -> &Limiter {
        &self.inner.streams
    }

    pub(crate) fn metrics(&self) -> Option<&PrometheusHandle> {
        self.inner.metrics.get()
    }

    /// Cancelled when shutdown begins: long polls answer at once.
    pub fn shutting_down(&self) -> &CancellationToken {
        &self.inner.shutting_down
    }

    /// How long the server has run.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }
}

/// Opens the configured backend with the server's settings.
pub(crate) async fn open_store(config: &Config) -> Result<AnyStore, StoreError> {
    let url = config.database_url.as_str();
    let store = match Backend::of(url)? {
        Backend::Postgres => {
            // A server keeps a few connections open: the first burst after a quiet spell does
            // not wait for new ones.
            let mut builder = PgStore::builder(url)?
                .max_connections(config.postgres_max_connections)
                .min_connections(config.postgres_max_connections.min(4))
                .max_payload_bytes(config.max_payload_bytes)
                .name("server");
            if let Some(schema) = &config.postgres_schema {
                builder = builder.schema(schema);
            }
            builder.connect().await?.into()
        }
        Backend::Sqlite(path) => SqliteStore::builder(path)
            .synchronous_full(config.sqlite_synchronous_full)
            .max_payload_bytes(config.max_payload_bytes)
            .name("server")
            .open()
            .await?
            .into(),
    };
    Ok(store)
}
