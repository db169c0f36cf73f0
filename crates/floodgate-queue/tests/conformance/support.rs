//! Fresh stores for the conformance suite.

use floodgate_queue::AnyStore;
#[cfg(feature = "postgres")]
use floodgate_queue::PgStore;
#[cfg(feature = "sqlite")]
use floodgate_queue::SqliteStore;

/// A store and what keeps its database alive (dropped after the store).
pub struct Harness<S, Guard> {
    pub store: S,
    _guard: Guard,
}

#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Harness<SqliteStore, tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("jobs.db"))
        .await
        .expect("open SQLite store");
    Harness { store, _guard: dir }
}

#[cfg(feature = "postgres")]
pub async fn postgres(label: &str) -> Option<Harness<PgStore, floodgate_testing::PgSchema>> {
    let schema = floodgate_testing::postgres_schema(label).await?;
    let store = PgStore::builder_with(schema.connect_options())
        .schema(schema.name())
        .max_connections(12)
        .connect()
        .await
        .expect("connect PostgreSQL store");
    Some(Harness {
        store,
        _guard: schema,
    })
}

#[cfg(feature = "sqlite")]
pub async fn any_sqlite() -> Harness<AnyStore, tempfile::TempDir> {
    let Harness { store, _guard } = sqlite().await;
    Harness {
        store: AnyStore::from(store),
        _guard,
    }
}

#[cfg(feature = "postgres")]
pub async fn any_postgres(label: &str) -> Option<Harness<AnyStore, floodgate_testing::PgSchema>> {
    let Harness { store, _guard } = postgres(label).await?;
    Some(Harness {
        store: AnyStore::from(store),
        _guard,
    })
}
