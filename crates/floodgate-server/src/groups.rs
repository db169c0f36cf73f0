//! The store's paused groups (see `Store::pause_group`), read at most once a second and
//! shared: HTTP workers' claims skip them, and the webhook deliverer learns from them which
//! destinations another node disabled or enabled.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use floodgate_queue::Store;
//! use floodgate_server::groups::PausedGroups;
//!
//! let store: floodgate_queue::AnyStore = floodgate_queue::SqliteStore::in_memory().await?.into();
//! let paused = PausedGroups::new(store.clone(), Duration::from_secs(1));
//! store.pause_group("hooks.example.com", "410 Gone").await?;
//! assert_eq!(paused.names().await.0.as_slice(), ["hooks.example.com"]);
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodgate_queue::{AnyStore, Store};

/// The paused groups, as last read.
#[derive(Debug)]
pub struct PausedGroups {
    store: AnyStore,
    every: Duration,
    last: Mutex<Option<(Instant, Arc<Vec<String>>)>>,
    reading: tokio::sync::Mutex<()>,
}

impl PausedGroups {
    /// Reads `store`'s paused groups at most once per `every`.
    pub fn new(store: AnyStore, every: Duration) -> Self {
        PausedGroups {
            store,
            every,
            last: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Vec<String>>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < self.every)
            .map(|(_, names)| names.clone())
    }

    /// The paused groups, and whether this call read them from the store. When the store
    /// cannot answer, the last list read (or none) stands, with a warning.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped read leaves the last list in place.
    pub async fn names(&self) -> (Arc<Vec<String>>, bool) {
        if let Some(names) = self.fresh() {
            return (names, false);
        }
        let _one = self.reading.lock().await;
        if let Some(names) = self.fresh() {
            return (names, false);
        }
        let read = self.store.paused_groups().await;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let names = match read {
            Ok(groups) => Arc::new(groups.into_iter().map(|g| g.name).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "paused groups not read; using the last list");
                last.as_ref().map(|(_, n)| n.clone()).unwrap_or_default()
            }
        };
        *last = Some((Instant::now(), names.clone()));
        (names, true)
    }

    /// Forgets the list: the next call reads (after this process paused or resumed a group).
    pub fn forget(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
