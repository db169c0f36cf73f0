//! Maintenance, run by the leader only: the rescuer of expired leases, the cleaner of finished
//! jobs and old inbox keys, and the scheduler of periodic jobs ([`Periodic`]). Every node may start it; a [`Singleton`] decides which one runs it, and
//! another node takes over when that one dies.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), floodgate_queue::StoreError> {
//! use std::time::Duration;
//! use floodgate_queue::maintenance::{Maintenance, Periodic};
//! use floodgate_queue::{NewJob, Singleton, SqliteStore};
//! use serde_json::json;
//!
//! let store = SqliteStore::in_memory().await?;
//! let role = Singleton::lease(store.clone(), "maintenance", "node-1", Duration::from_secs(30));
//! let maintenance = Maintenance::new(store)
//!     .periodic(Periodic::new("hourly_sync", "0 0 * * * *", NewJob::new("sync", json!({})))?)
//!     .start(role.clone());
//! maintenance.stop().await;
//! # Ok(()) }
//! ```

mod cleaner;
mod rescuer;
mod scheduler;

use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use scheduler::Periodic;

use crate::leader::Singleton;
use crate::store::{Retention, Store};

/// The maintenance tasks and their settings.
#[derive(Debug, Clone)]
pub struct Maintenance<S> {
    store: S,
    rescue_every: Duration,
    retention: Retention,
    clean_every: Duration,
    inbox_retention: Option<Duration>,
    periodic: Vec<Periodic>,
    catch_up: Duration,
}

impl<S: Store + Clone> Maintenance<S> {
    /// Rescue every second (a dead worker's jobs run again within about a second of their
    /// lease's end; a pass with nothing to rescue is one indexed statement); clean every 5 minutes with the default [`Retention`] and inbox keys
    /// kept 7 days; no periodic jobs; catch up 10 minutes of missed occurrences.
    pub fn new(store: S) -> Self {
        Maintenance {
            store,
            rescue_every: Duration::from_secs(1),
            retention: Retention::default(),
            clean_every: Duration::from_secs(300),
            inbox_retention: Some(Duration::from_secs(7 * 24 * 3600)),
            periodic: Vec::new(),
            catch_up: Duration::from_secs(600),
        }
    }

    /// How often expired leases are rescued.
    pub fn rescue_every(mut self, every: Duration) -> Self {
        self.rescue_every = every;
        self
    }

    /// How long finished jobs are kept, and how often the cleaner runs.
    pub fn retention(mut self, retention: Retention, every: Duration) -> Self {
        self.retention = retention;
        self.clean_every = every;
        self
    }

    /// How long inbox keys are kept (`None`: forever).
    pub fn inbox_retention(mut self, age: Option<Duration>) -> Self {
        self.inbox_retention = age;
        self
    }

    /// Adds a periodic job.
    pub fn periodic(mut self, periodic: Periodic) -> Self {
        self.periodic.push(periodic);
        self
    }

    /// How far back a new leader enqueues occurrences a previous one may have missed. Keep it
    /// shorter than the retention of succeeded jobs: an occurrence whose job was deleted
    /// would otherwise run again.
    pub fn catch_up(mut self, window: Duration) -> Self {
        self.catch_up = window.min(self.retention.succeeded);
        self
    }

    /// Runs the tasks whenever `role` leads, until [`MaintenanceHandle::stop`].
    pub fn start(self, role: Singleton) -> MaintenanceHandle {
        let tasks = TaskTracker::new();
        let r = role.clone();
        tasks.spawn(async move {
            r.lead(|term| {
                let m = self.clone();
                async move {
                    tokio::join!(
                        rescuer::run(m.store.clone(), m.rescue_every, term.clone()),
                        cleaner::run(
                            m.store.clone(),
                            m.retention,
                            m.inbox_retention,
                            m.clean_every,
                            term.clone()
                        ),
                        scheduler::run(
                            m.store.clone(),
                            m.periodic.clone(),
                            m.catch_up,
                            term.clone()
                        ),
                    );
                }
            })
            .await;
        });
        tasks.close();
        MaintenanceHandle { role, tasks }
    }
}

/// Running maintenance.
#[derive(Debug)]
pub struct MaintenanceHandle {
    role: Singleton,
    tasks: TaskTracker,
}

impl MaintenanceHandle {
    /// Stops the tasks and gives up the role.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once polled: as for [`Singleton::stop`], the first poll tells the role to
    /// stop, and the tasks wind down and the role is released in the background; dropping the
    /// future only stops waiting for that. Call it again to wait.
    pub async fn stop(&self) {
        self.role.stop().await;
        self.tasks.wait().await;
    }
}
