//! The queue test layer, shared by the test binaries (`mod support;`): fresh stores on each
//! backend (a SQLite file in a temporary directory, a PostgreSQL store in a schema of its own,
//! dropped after), waits on job states and worker events, and [`backends!`], which makes one
//! test per case and store.
//!
//! PostgreSQL stores are `None` (the test skips, saying why) when the server is unreachable,
//! unless `FLOODGATE_REQUIRE_SERVICES=1`.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use floodgate_queue::AnyStore;
#[cfg(feature = "sqlite")]
use floodgate_queue::SqliteStore;
use floodgate_queue::worker::WorkerEvent;
use floodgate_queue::{Job, JobId, JobState, Store};
#[cfg(feature = "postgres")]
use floodgate_queue::{PgStore, PgStoreBuilder};

/// A store and what keeps its database alive (dropped after the store).
pub struct Harness<S, Guard> {
    pub store: S,
    pub guard: Guard,
}

/// A store in a new SQLite file, `jobs.db` in a temporary directory.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Harness<SqliteStore, tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("jobs.db"))
        .await
        .expect("open SQLite store");
    Harness { store, guard: dir }
}

/// Settings for a store in `schema` (for several stores on one schema, or other options).
#[cfg(feature = "postgres")]
pub fn pg_builder(schema: &floodgate_testing::PgSchema) -> PgStoreBuilder {
    PgStore::builder_with(schema.connect_options()).schema(schema.name())
}

/// A store in a new PostgreSQL schema named after `label`.
#[cfg(feature = "postgres")]
pub async fn postgres(label: &str) -> Option<Harness<PgStore, floodgate_testing::PgSchema>> {
    let schema = floodgate_testing::postgres_schema(label).await?;
    let store = pg_builder(&schema)
        .max_connections(12)
        .connect()
        .await
        .expect("connect PostgreSQL store");
    Some(Harness {
        store,
        guard: schema,
    })
}

/// [`sqlite`] behind an `AnyStore`.
#[cfg(feature = "sqlite")]
pub async fn any_sqlite() -> Harness<AnyStore, tempfile::TempDir> {
    let Harness { store, guard } = sqlite().await;
    Harness {
        store: AnyStore::from(store),
        guard,
    }
}

/// [`postgres`] behind an `AnyStore`.
#[cfg(feature = "postgres")]
pub async fn any_postgres(label: &str) -> Option<Harness<AnyStore, floodgate_testing::PgSchema>> {
    let Harness { store, guard } = postgres(label).await?;
    Some(Harness {
        store: AnyStore::from(store),
        guard,
    })
}

/// Polls job `id` until it is in `state`, failing after 20 s.
pub async fn eventually<S: Store>(store: &S, id: JobId, state: JobState) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still {} (wanted {state}): {job:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first worker event `pick` maps to a value, failing after 10 s.
pub async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<WorkerEvent>,
    pick: impl Fn(WorkerEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(found) = pick(events.recv().await.unwrap()) {
                return found;
            }
        }
    })
    .await
    .expect("the awaited event within 10 s")
}

/// One test per case and store, each on a fresh store. A case is an async function, in the
/// module that invokes the macro, taking `&S` for a store type `S`.
///
/// * `backends!(a, b)`: each case on a `SqliteStore` (module `sqlite`) and a `PgStore`
///   (module `postgres`).
/// * `backends!(all: [a, b], outbox: [c])`: `all` cases (generic over `Store`) on both
///   backends and on `AnyStore` holding each (modules `any_sqlite`, `any_postgres`);
///   `outbox` cases (needing `OutboxStore`, which `AnyStore` is not) on the two backends.
#[allow(unused_macros)] // not every test binary uses it
macro_rules! backends {
    (all: [$($case:ident),* $(,)?], outbox: [$($ocase:ident),* $(,)?] $(,)?) => {
        $crate::support::backends!(@sqlite sqlite, sqlite, [$($case,)* $($ocase,)*]);
        $crate::support::backends!(@postgres postgres, postgres, [$($case,)* $($ocase,)*]);
        $crate::support::backends!(@sqlite any_sqlite, any_sqlite, [$($case,)*]);
        $crate::support::backends!(@postgres any_postgres, any_postgres, [$($case,)*]);
    };
    (@sqlite $module:ident, $make:ident, [$($case:ident,)*]) => {
        #[cfg(feature = "sqlite")]
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let harness = $crate::support::$make().await;
                    super::$case(&harness.store).await;
                    harness.store.close().await;
                }
            )*
        }
    };
    (@postgres $module:ident, $make:ident, [$($case:ident,)*]) => {
        #[cfg(feature = "postgres")]
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let label = concat!(stringify!($module), "_", stringify!($case));
                    let Some(harness) = $crate::support::$make(label).await else {
                        return;
                    };
                    super::$case(&harness.store).await;
                    harness.store.close().await;
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        $crate::support::backends!(@sqlite sqlite, sqlite, [$($case,)*]);
        $crate::support::backends!(@postgres postgres, postgres, [$($case,)*]);
    };
}

#[allow(unused_imports)]
pub(crate) use backends;

/// Polls `check` until it holds, failing with `what` after 20 s.
#[allow(dead_code)] // not every test binary uses it
pub async fn eventually_true<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (up to 10 s) until the worker has passed up at least `total` chances to claim: the
/// event a "nothing was claimed" assertion waits for, instead of a sleep.
#[allow(dead_code)] // not every test binary uses it
pub async fn passes_up(handle: &floodgate_queue::worker::WorkerHandle, total: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().claims_passed_up < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker passed up {} chances to claim, not {total}",
            handle.stats().claims_passed_up
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
