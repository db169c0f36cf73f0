//! What only one backend has, or what needs raw SQL beside the store: business rows in the
//! outbox transaction, migrations run twice and concurrently, table prefixes and schemas,
//! session settings, LISTEN surviving a dropped connection, and the SQL enqueue functions.

use std::time::Duration;

use floodgate_queue::{Claim, NewJob, OutboxStore, Store, Wakeup};
use serde_json::json;

mod support;

#[cfg(feature = "postgres")]
#[path = "backends/sql_enqueue.rs"]
mod sql_enqueue;

/// JSON nested `depth` arrays deep, as text (beyond what readers decode when deep enough).
fn deep_json_text(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// The same, as a value built in memory (which has no depth limit).
fn deep_json(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |v, _| json!([v]))
}

/// Regression (issue 12, case 3): a payload nested past what readers decode was stored, then
/// broke `claim` for its whole batch. It is now refused at the door, and nothing is written.
async fn deep_payloads_are_refused_at_enqueue<S: Store>(store: &S) {
    let err = store
        .enqueue(NewJob::new("k", deep_json(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            floodgate_queue::StoreError::Invalid {
                field: "payload",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nested"), "{err}");
    let batch = vec![
        NewJob::new("k", json!(1)),
        NewJob::new("k", json!({ "deep": deep_json(150) })),
    ];
    assert!(store.enqueue_many(batch).await.is_err());
    let nul = store
        .enqueue(NewJob::new("k", json!({ "s": "a\u{0}b" })))
        .await;
    assert!(nul.unwrap_err().to_string().contains("NUL"));
    let fine = store
        .enqueue(NewJob::new(
            "k",
            deep_json(floodgate_queue::MAX_JSON_DEPTH - 1),
        ))
        .await
        .unwrap();
    let claimed = store.claim(&Claim::new("w", 10)).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the job within the limit was stored");
    assert_eq!(claimed[0].id, fine.id);
}

/// Regression (issue 12, case 3): a row that cannot be decoded at claim time (written by
/// another tool, or before validation existed) is sent dead with a clear error, and the other
/// jobs of the batch run; none is left `running` under a lease nobody holds.
async fn an_unreadable_row_does_not_strand_its_batch<S: Store>(
    store: &S,
    corrupt: impl AsyncFnOnce(floodgate_queue::JobId),
) {
    let ids: Vec<_> = store
        .enqueue_many((0..20).map(|n| NewJob::new("k", json!(n))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let bad = ids[7];
    corrupt(bad).await;
    let claimed = store.claim(&Claim::new("w", 20)).await.unwrap();
    let mut got: Vec<_> = claimed.iter().map(|j| j.id).collect();
    got.sort();
    let expected: Vec<_> = ids.iter().copied().filter(|&id| id != bad).collect();
    assert_eq!(got, expected, "the 19 readable jobs are claimed");
    let stats = store.queue_stats().await.unwrap();
    let counts = &stats[0].counts;
    assert_eq!(counts.get(floodgate_queue::JobState::Running), 19);
    assert_eq!(
        counts.get(floodgate_queue::JobState::Dead),
        1,
        "the bad row is dead"
    );
    assert!(store.claim(&Claim::new("w", 20)).await.unwrap().is_empty());
}

/// The cases above that need nothing of one backend, on each.
mod both {
    use super::*;

    crate::support::backends!(deep_payloads_are_refused_at_enqueue);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use floodgate_queue::SqliteStore;

    /// Opening a file that cannot be a store names it and says what to do.
    #[tokio::test]
    async fn opening_a_bad_path_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/jobs.db");
        let err = SqliteStore::open(&missing).await.unwrap_err().to_string();
        assert!(
            err.contains("no/such/dir") && err.contains("does not exist"),
            "{err}"
        );
        assert!(err.contains("mkdir -p"), "{err}");

        let err = SqliteStore::open(dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");

        let not_a_db = dir.path().join("notes.txt");
        std::fs::write(
            &not_a_db,
            "these are my notes, not a database\n".repeat(200),
        )
        .unwrap();
        let err = SqliteStore::open(&not_a_db).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, floodgate_queue::StoreError::Open { .. }),
            "{text}"
        );
        assert!(
            text.contains("notes.txt") && text.contains("not a SQLite database"),
            "{text}"
        );
        assert!(!text.contains("code: 26"), "{text}");
    }

    /// A database migrated by a newer floodgate is refused, not misread.
    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        let store = SqliteStore::open(&path).await.unwrap();
        sqlx::query(
            "INSERT INTO floodgate_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.close().await;
        let err = SqliteStore::open(&path).await.unwrap_err().to_string();
        assert!(
            err.contains("newer floodgate") && err.contains("99"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_payload_limit_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::builder(dir.path().join("limit.db"))
            .max_payload_bytes(1_000)
            .open()
            .await
            .unwrap();
        store
            .enqueue(NewJob::new("k", json!("x".repeat(900))))
            .await
            .unwrap();
        let err = store
            .enqueue(NewJob::new("k", json!("x".repeat(1_000))))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("limit of 1000 bytes"), "{err}");
    }

    #[tokio::test]
    async fn an_unreadable_row_is_dead_lettered_and_the_batch_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("bad.db")).await.unwrap();
        let pool = store.pool().clone();
        super::an_unreadable_row_does_not_strand_its_batch(&store, async |id| {
            sqlx::query("UPDATE floodgate_jobs SET payload = ? WHERE id = ?")
                .bind(deep_json_text(200))
                .bind(id.0)
                .execute(&pool)
                .await
                .unwrap();
        })
        .await;
        let error: String =
            sqlx::query_scalar("SELECT last_error FROM floodgate_jobs WHERE state = 'dead'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(
            error.contains("could not be read when it was claimed"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn business_row_and_job_commit_or_roll_back_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("app.db")).await.unwrap();
        sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)")
            .execute(store.pool())
            .await
            .unwrap();

        let mut tx = store.begin().await.unwrap();
        sqlx::query("INSERT INTO orders (id, total) VALUES (1, 100)")
            .execute(&mut *tx)
            .await
            .unwrap();
        store
            .enqueue_in(&mut tx, NewJob::new("order_placed", json!({"order": 1})))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        sqlx::query("INSERT INTO orders (id, total) VALUES (2, 200)")
            .execute(&mut *tx)
            .await
            .unwrap();
        store
            .enqueue_in(&mut tx, NewJob::new("order_placed", json!({"order": 2})))
            .await
            .unwrap();
        tx.rollback().await.unwrap();

        let orders: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(orders, [1]);
        let jobs = store.claim(&Claim::new("w", 10)).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].payload, json!({"order": 1}));
    }

    #[tokio::test]
    async fn reopening_keeps_jobs_and_prefixes_keep_stores_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let a = SqliteStore::open(&path).await.unwrap();
        let id = a.enqueue(NewJob::new("k", json!(1))).await.unwrap().id;
        a.close().await;
        // Migrations already applied: opening again changes nothing and loses nothing.
        let a = SqliteStore::open(&path).await.unwrap();
        assert!(a.job(id).await.unwrap().is_some());

        let b = SqliteStore::builder(&path)
            .table_prefix("other_app_")
            .open()
            .await
            .unwrap();
        assert!(
            b.job(id).await.unwrap().is_none(),
            "another prefix, other tables"
        );
        b.enqueue(NewJob::new("k", json!(2))).await.unwrap();
        assert_eq!(a.claim(&Claim::new("w", 10)).await.unwrap().len(), 1);

        let bad = SqliteStore::builder(&path)
            .table_prefix("bad-prefix")
            .open()
            .await;
        assert!(
            matches!(
                bad,
                Err(floodgate_queue::StoreError::Invalid {
                    field: "table_prefix",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    /// Two stores on one file stand for two processes: each has its own writer connection,
    /// so their claims contend on SQLite's file lock (waited out with the busy timeout).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_claim_each_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let a = SqliteStore::open(&path).await.unwrap();
        let b = SqliteStore::open(&path).await.unwrap();
        let jobs = (0..5_000).map(|n| NewJob::new("k", json!(n))).collect();
        a.enqueue_many(jobs).await.unwrap();
        let mut tasks = Vec::new();
        for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let jobs = store.claim(&Claim::new(format!("w{i}"), 25)).await.unwrap();
                    if jobs.is_empty() {
                        return seen;
                    }
                    for job in jobs {
                        seen.push(job.payload.as_i64().unwrap());
                        store.complete(job.lease().unwrap(), None).await.unwrap();
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..5_000).collect::<Vec<_>>(), "each job exactly once");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use floodgate_queue::PgStore;
    use sqlx::Row;

    async fn store(schema: &floodgate_testing::PgSchema) -> PgStore {
        crate::support::pg_builder(schema).connect().await.unwrap()
    }

    /// Regression (performance round 3): sqlx 0.9.0 left Nagle's algorithm on, so the last
    /// bytes of a statement larger than one TCP segment waited for the server's delayed ACK
    /// (40 ms) before they went out: a bulk enqueue ran at a fifth of its speed. Ten 200 KB
    /// statements over TCP: without `TCP_NODELAY` each waits about 40 ms; with it, a few
    /// milliseconds. The median is held far below the stall, far above a loaded machine's
    /// round trip.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_statements_over_tcp_never_wait_for_a_delayed_ack() {
        let Some(schema) = floodgate_testing::postgres_schema("nodelay").await else {
            return;
        };
        let options = schema.connect_options();
        if options.get_host().starts_with('/') {
            eprintln!("skipped: DATABASE_URL names a Unix socket; this test is about TCP");
            return;
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let big = "x".repeat(200_000);
        let mut took = Vec::new();
        for _ in 0..11 {
            let began = std::time::Instant::now();
            let n: i32 = sqlx::query_scalar("SELECT length($1)")
                .bind(&big)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 200_000);
            took.push(began.elapsed());
        }
        took.sort();
        assert!(
            took[5] < Duration::from_millis(20),
            "the median 200 KB statement took {:?} over TCP (all: {took:?}): Nagle's algorithm \
             is on again (TCP_NODELAY unset)",
            took[5]
        );
        pool.close().await;
    }

    /// Nothing listens: the real cause, at once (not "pool timed out" after 10 s).
    #[tokio::test]
    async fn an_unreachable_server_fails_fast_with_the_cause() {
        let started = std::time::Instant::now();
        let err = PgStore::connect("postgres://postgres@127.0.0.1:1/test")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, floodgate_queue::StoreError::Open { .. }),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn urls_of_other_shapes_are_refused_before_connecting() {
        for url in ["mysql://root@127.0.0.1/test", "localhost:5432"] {
            let err = PgStore::builder(url).unwrap_err().to_string();
            assert!(err.contains("postgres://user"), "{url}: {err}");
        }
    }

    /// A missing database and a failed login say so; server messages carry no C source line.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_refusals_are_explained() {
        let Some(schema) = floodgate_testing::postgres_schema("refusals").await else {
            return;
        };
        let opts = schema.connect_options();
        let err = PgStore::builder_with(opts.clone().database("no_such_database_here"))
            .connect()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("createdb"),
            "{err}"
        );

        let store = store(&schema).await;
        let err: floodgate_queue::StoreError = sqlx::query("SELECT 1 / 0")
            .execute(store.pool())
            .await
            .unwrap_err()
            .into();
        let text = err.to_string();
        assert!(
            text.contains("division by zero") && text.contains("SQLSTATE 22012"),
            "{text}"
        );
        assert!(!text.contains(" at line"), "{text}");
        store.close().await;
    }

    /// Managed PostgreSQL services require TLS: `sslmode=require` connects encrypted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_connections_work() {
        let Some(schema) = floodgate_testing::postgres_schema("tls").await else {
            return;
        };
        let opts = schema
            .connect_options()
            .ssl_mode(sqlx::postgres::PgSslMode::Require);
        let store = PgStore::builder_with(opts)
            .schema(schema.name())
            .max_connections(1)
            .connect()
            .await
            .expect("a TLS connection (.ci/run turns ssl on in the local server)");
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(encrypted, "the connection is not encrypted");
        store.enqueue(NewJob::new("k", json!(1))).await.unwrap();
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_payload_limit_is_configurable() {
        let Some(schema) = floodgate_testing::postgres_schema("payload_limit").await else {
            return;
        };
        let store = crate::support::pg_builder(&schema)
            .max_payload_bytes(1_000)
            .connect()
            .await
            .unwrap();
        store
            .enqueue(NewJob::new("k", json!("x".repeat(900))))
            .await
            .unwrap();
        let err = store
            .enqueue(NewJob::new("k", json!("x".repeat(1_000))))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("limit of 1000 bytes"), "{err}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_row_is_dead_lettered_and_the_batch_runs() {
        let Some(schema) = floodgate_testing::postgres_schema("unreadable_row").await else {
            return;
        };
        let store = store(&schema).await;
        let jobs = format!("\"{}\".floodgate_jobs", schema.name());
        let pool = store.pool().clone();
        super::an_unreadable_row_does_not_strand_its_batch(&store, async |id| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {jobs} SET payload = $1::jsonb WHERE id = $2"
            )))
            .bind(deep_json_text(200))
            .bind(id.0)
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        let error: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT last_error FROM {jobs} WHERE state = 'dead'"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert!(
            error.contains("could not be read when it was claimed"),
            "{error}"
        );
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn business_row_and_job_commit_or_roll_back_together() {
        let Some(schema) = floodgate_testing::postgres_schema("outbox_rows").await else {
            return;
        };
        let store = store(&schema).await;
        let orders = format!("\"{}\".orders", schema.name());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {orders} (id bigint PRIMARY KEY, total bigint NOT NULL)"
        )))
        .execute(store.pool())
        .await
        .unwrap();
        for (id, commit) in [(1, true), (2, false)] {
            let mut tx = store.begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {orders} (id, total) VALUES ($1, 100)"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
            store
                .enqueue_in(&mut tx, NewJob::new("order_placed", json!({ "order": id })))
                .await
                .unwrap();
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
        }
        let ids: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM {orders}")))
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(ids, [1]);
        let jobs = store.claim(&Claim::new("w", 10)).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].payload, json!({"order": 1}));
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_starts_migrate_once() {
        let Some(schema) = floodgate_testing::postgres_schema("migrate_once").await else {
            return;
        };
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let options = schema.connect_options();
                let name = schema.name().to_owned();
                tokio::spawn(async move {
                    PgStore::builder_with(options)
                        .schema(name)
                        .max_connections(2)
                        .connect()
                        .await
                })
            })
            .collect();
        let mut stores = Vec::new();
        for s in starts {
            stores.push(s.await.unwrap().expect("every node starts"));
        }
        let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM \"{}\".floodgate_migrations",
            schema.name()
        )))
        .fetch_all(stores[0].pool())
        .await
        .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5]);
        let id = stores[0]
            .enqueue(NewJob::new("k", json!(1)))
            .await
            .unwrap()
            .id;
        assert!(
            stores[3].job(id).await.unwrap().is_some(),
            "one set of tables"
        );
        for s in stores {
            s.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_carry_the_timeouts() {
        let Some(schema) = floodgate_testing::postgres_schema("session_settings").await else {
            return;
        };
        let store = PgStore::builder_with(schema.connect_options())
            .schema(schema.name())
            .statement_timeout(Some(Duration::from_secs(7)))
            .idle_in_transaction_timeout(Some(Duration::from_secs(9)))
            .connect()
            .await
            .unwrap();
        let row = sqlx::query(
            "SELECT current_setting('statement_timeout') AS st, \
             current_setting('idle_in_transaction_session_timeout') AS it, \
             current_setting('jit') AS jit",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>("st"), "7s");
        assert_eq!(row.get::<String, _>("it"), "9s");
        assert_eq!(row.get::<String, _>("jit"), "off");
        store.close().await;

        // The statement timeout really ends a long statement.
        let strict = PgStore::builder_with(schema.connect_options())
            .schema(schema.name())
            .statement_timeout(Some(Duration::from_millis(100)))
            .connect()
            .await
            .unwrap();
        let err = sqlx::query("SELECT pg_sleep(5)")
            .execute(strict.pool())
            .await
            .expect_err("cancelled by statement_timeout");
        let code = err
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("57014"), "{err}");
        strict.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listen_reconnects_after_its_connection_is_killed() {
        let Some(schema) = floodgate_testing::postgres_schema("listen_reconnect").await else {
            return;
        };
        let store = store(&schema).await;
        let mut wakeups = store
            .listen()
            .await
            .unwrap()
            .poll_interval(Duration::from_secs(3600));
        assert_eq!(wakeups.next().await, Wakeup::Poll);

        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query = 'LISTEN \"' || $1 || '\"'",
        )
        .bind(store.channel())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(killed, 1, "the listener's connection was found and killed");

        // The loss shows as a poll (notifications may have been missed), then it listens again.
        let lost = tokio::time::timeout(Duration::from_secs(10), wakeups.next())
            .await
            .expect("the loss is noticed");
        assert_eq!(lost, Wakeup::Poll);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            store
                .enqueue(NewJob::new("k", json!(1)).queue("after"))
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), wakeups.next()).await {
                Ok(Wakeup::Enqueued { queue }) => {
                    assert_eq!(queue, "after");
                    break;
                }
                Ok(Wakeup::Poll) | Err(_) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "never listened again"
                    );
                }
            }
        }
        // The listener has its own connection: closing the store does not wait for it.
        tokio::time::timeout(Duration::from_secs(10), store.close())
            .await
            .expect("close() does not wait for a live listener");
        drop(wakeups);
    }

    async fn backlog(store: &PgStore, n: i64) {
        let jobs = (0..n).map(|i| NewJob::new("k", json!(i))).collect();
        store.enqueue_many(jobs).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_cursor_keeps_priorities_strict() {
        let Some(schema) = floodgate_testing::postgres_schema("cursor_priority").await else {
            return;
        };
        let store = store(&schema).await;
        backlog(&store, 10).await;
        assert_eq!(store.claim(&Claim::new("w", 2)).await.unwrap().len(), 2); // leaves a cursor
        let urgent = store
            .enqueue(NewJob::new("k", json!("urgent")).priority(9))
            .await
            .unwrap();
        let next = store.claim(&Claim::new("w", 1)).await.unwrap();
        assert_eq!(next[0].id, urgent.id, "a higher priority is never skipped");
        let rest = store.claim(&Claim::new("w", 100)).await.unwrap();
        assert_eq!(rest.len(), 8, "nothing lost behind the cursor");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_behind_the_cursor_waits_at_most_one_rescan_interval() {
        let Some(schema) = floodgate_testing::postgres_schema("cursor_rescan").await else {
            return;
        };
        for rescan in [Some(Duration::from_millis(300)), None] {
            let store = PgStore::builder_with(schema.connect_options())
                .schema(schema.name())
                .claim_rescan(rescan)
                .connect()
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM \"{}\".floodgate_jobs",
                schema.name()
            )))
            .execute(store.pool())
            .await
            .unwrap();
            backlog(&store, 20).await;
            assert_eq!(store.claim(&Claim::new("w", 2)).await.unwrap().len(), 2);
            // Committed late with an old run_at: behind the cursor.
            let late = store
                .enqueue(
                    NewJob::new("k", json!("late"))
                        .run_at(chrono::Utc::now() - chrono::Duration::hours(1)),
                )
                .await
                .unwrap();
            let next = store.claim(&Claim::new("w", 2)).await.unwrap();
            match rescan {
                // Strict order: the oldest run_at first.
                None => assert_eq!(next[0].id, late.id),
                Some(interval) => {
                    let mut found = next.iter().any(|j| j.id == late.id);
                    tokio::time::sleep(interval).await;
                    let after = store.claim(&Claim::new("w", 2)).await.unwrap();
                    found |= after.iter().any(|j| j.id == late.id);
                    assert!(found, "taken by the full claim after the rescan interval");
                }
            }
            store.close().await;
        }
    }
}

/// The benchmark examples answer `--help` and refuse bad arguments with a message (no panic,
/// no backtrace). `cargo test` builds examples next to the test binaries.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn command_line_examples_answer_help_and_refuse_bad_arguments() {
    let examples = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples");
    for (name, bad) in [
        ("bench_worker", ["--backend", "mysql"]),
        ("bench_store", ["--jobs", "3"]),
    ] {
        let exe = examples.join(name);
        let help = std::process::Command::new(&exe)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(help.status.success(), "{name} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
        let out = std::process::Command::new(&exe).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} {bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error:") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
