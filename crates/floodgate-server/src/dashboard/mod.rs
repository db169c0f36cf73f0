//! The live dashboard's data: one sampler computes the [`Overview`] once per second and every
//! open dashboard receives that same result (`GET /v1/dashboard/events`, Server-Sent Events),
//! so many dashboards cost the database nothing more than one. The page itself is in
//! `assets/` (embedded in the binary), served by `api::dashboard`.
//!
//! The sampler starts with the first dashboard (or with `floodgate serve`), computes the full
//! overview every second while someone watches (a subscriber, or a `GET /v1/dashboard` in the
//! last 30 seconds), and otherwise only records a chart point every 5 seconds so the charts
//! have the last 15 minutes when a dashboard opens.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use floodgate_server::{config::Config, state::AppState};
//!
//! let store = floodgate_queue::SqliteStore::in_memory().await?;
//! let state = AppState::new(store.into(), Config::default());
//! let overview = state.dashboard().overview().await?;
//! assert!(overview.queues.is_empty());
//! # Ok(()) }
//! ```

pub mod overview;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use floodgate::Limiter;
use floodgate_queue::{AnyStore, Store, StoreError};
use tokio::sync::watch;

pub use overview::Overview;
use overview::{BreakerView, LimiterView, Series, Totals};

use crate::api::model::QueueView;
use crate::delivery::Deliveries;
use crate::sampler::QueueSampler;

/// How often the overview is computed while someone watches.
pub const TICK: Duration = Duration::from_secs(1);

/// How long a `GET /v1/dashboard` counts as watching.
const WATCH_WINDOW: Duration = Duration::from_secs(30);

/// At most this many finished jobs feed one latency point.
const LATENCY_SAMPLE: u32 = 1_000;

/// The latest overview, serialised once for each access level.
#[derive(Debug)]
pub struct Snapshot {
    /// The overview (its `access` is `admin`).
    pub overview: Overview,
    /// Its JSON for an admin session.
    pub admin_json: Arc<str>,
    /// Its JSON for a read-only session.
    pub read_json: Arc<str>,
}

/// What the overview is computed from.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) store: AnyStore,
    pub(crate) sampler: Arc<QueueSampler>,
    pub(crate) deliveries: Deliveries,
    pub(crate) requests: Limiter,
    /// The named limiters and breakers of the settings.
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// Cancelled when the server stops: the sampler ends before the store closes.
    pub(crate) stop: tokio_util::sync::CancellationToken,
}

/// The dashboard's sampler and its subscribers.
#[derive(Debug)]
pub struct Dashboard {
    sources: Sources,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    series: Mutex<Series>,
    started: Mutex<bool>,
    wanted_at: Mutex<Instant>,
}

impl Dashboard {
    pub(crate) fn new(sources: Sources) -> Arc<Dashboard> {
        Arc::new(Dashboard {
            sources,
            latest: watch::channel(None).0,
            series: Mutex::new(Series::default()),
            started: Mutex::new(false),
            wanted_at: Mutex::new(Instant::now()),
        })
    }

    /// Starts the sampler on the current runtime, if it is not running.
    pub fn start(self: &Arc<Self>) {
        let mut started = lock(&self.started);
        if *started {
            return;
        }
        *started = true;
        let me = Arc::downgrade(self);
        let stop = self.sources.stop.clone();
        tokio::spawn(async move {
            // The first tick one period from now: whoever started the sampler has just
            // computed (or is computing) an overview.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                let Some(me) = me.upgrade() else { return };
                let due = me.watched() || lock(&me.series).due(SystemTime::now());
                if due && let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "dashboard overview not computed");
                }
            }
        });
    }

    fn watched(&self) -> bool {
        self.latest.receiver_count() > 0 || lock(&self.wanted_at).elapsed() < WATCH_WINDOW
    }

    /// Every overview from now on (the current one first, if there is one).
    pub fn subscribe(self: &Arc<Self>) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.start();
        self.latest.subscribe()
    }

    /// The latest overview (computed now if there is none yet).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call leaves the latest overview as it was or replaced whole.
    pub async fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>, StoreError> {
        *lock(&self.wanted_at) = Instant::now();
        self.start();
        if let Some(s) = self.latest.borrow().clone() {
            return Ok(s);
        }
        self.refresh().await
    }

    /// The latest overview (see [`snapshot`](Self::snapshot)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`snapshot`](Self::snapshot).
    pub async fn overview(self: &Arc<Self>) -> Result<Overview, StoreError> {
        Ok(self.snapshot().await?.overview.clone())
    }

    /// Computes the overview now and hands it to every subscriber (the sampler does this once
    /// a second; benchmarks call it to time one computation).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: subscribers see the previous overview until a computation completes.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let started = Instant::now();
        let s = &self.sources;
        let sample = s.sampler.refresh().await?;
        let queues: Vec<QueueView> = sample.queues.iter().cloned().map(QueueView::from).collect();
        let now = SystemTime::now();
        let since = {
            let series = lock(&self.series);
            series.due(now).then(|| series.interval_start())
        };
        if let Some(since) = since {
            let mut waits = match since {
                Some(t) => s.store.recent_waits(t.into(), LATENCY_SAMPLE).await?,
                None => Vec::new(),
            };
            lock(&self.series).close(Totals::of(&queues, now), &mut waits);
        }
        let mut limiters = vec![LimiterView::from(s.requests.stats())];
        let deliveries = s.deliveries.iter();
        limiters.extend(deliveries.flat_map(|d| d.limiters()).map(LimiterView::from));
        // The named limiters beside the server's own (fleet-wide: the fleet's count).
        limiters.extend(
            s.limits
                .permits()
                .snapshot()
                .await
                .into_iter()
                .map(|l| LimiterView {
                    name: format!("limit:{}", l.name),
                    active: l.held_fleet.map_or(l.held_here, |n| n as usize),
                    queued: l.waiting,
                    limit: l.limit,
                }),
        );
        let named = s
            .limits
            .breakers()
            .snapshot()
            .into_iter()
            .map(|(mut b, _)| {
                b.name = format!("breaker:{}", b.name);
                b
            });
        let breakers = s
            .deliveries
            .iter()
            .flat_map(|d| d.health().breakers)
            .chain(named)
            .map(|b| BreakerView {
                name: b.name,
                state: b.state.as_str().to_owned(),
                since_seconds: b.in_state_for.as_secs_f64(),
            })
            .collect();
        let mut overview = Overview {
            at: Utc::now(),
            access: "read".to_owned(),
            queues,
            series: lock(&self.series).points(),
            limiters,
            breakers,
            protective: None,
            compute_ms: 0.0,
        };
        overview.compute_ms = started.elapsed().as_secs_f64() * 1000.0;
        metrics::histogram!("floodgate_dashboard_compute_seconds")
            .record(started.elapsed().as_secs_f64());
        let read_json: Arc<str> = serde_json::to_string(&overview)
            .expect("an overview is JSON")
            .into();
        overview.access = "admin".to_owned();
        let admin_json: Arc<str> = serde_json::to_string(&overview)
            .expect("an overview is JSON")
            .into();
        let snapshot = Arc::new(Snapshot {
            overview,
            admin_json,
            read_json,
        });
        self.latest.send_replace(Some(snapshot.clone()));
        Ok(snapshot)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
