//! `floodgate_enqueue` and `floodgate_enqueue_many`, the SQL functions that enqueue inside
//! the caller's own transaction (PostgreSQL), called here through raw SQL as any language's
//! driver would: atomic with a business row, the same row as `Store::enqueue`, every rule
//! refused with its SQLSTATE, one job under an idempotency race, workers woken, the version
//! checked at connect.

use std::time::Duration;

use floodgate_queue::{Job, JobId, NewJob, PgStore, Store, StoreError, Wakeup, sql};
use floodgate_testing::PgSchema;
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};

async fn setup(label: &str) -> Option<(PgSchema, PgStore)> {
    let schema = floodgate_testing::postgres_schema(label).await?;
    let store = crate::support::pg_builder(&schema).connect().await.unwrap();
    Some((schema, store))
}

/// A pool of the caller's own, on the store's schema (its `search_path`).
async fn own_pool(schema: &PgSchema, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(schema.connect_options())
        .await
        .unwrap()
}

async fn job(store: &PgStore, id: i64) -> Job {
    store.job(JobId(id)).await.unwrap().expect("the job exists")
}

/// The error's SQLSTATE and message.
fn refusal(err: sqlx::Error) -> (String, String) {
    match err {
        sqlx::Error::Database(e) => (
            e.code().map(|c| c.into_owned()).unwrap_or_default(),
            e.message().to_owned(),
        ),
        other => panic!("not a database error: {other}"),
    }
}

#[tokio::test]
async fn a_business_row_and_its_job_commit_or_roll_back_together() {
    let Some((schema, store)) = setup("sql_outbox").await else {
        return;
    };
    let pool = own_pool(&schema, 2).await;
    sqlx::query("CREATE TABLE transfers (id bigint PRIMARY KEY, job bigint)")
        .execute(&pool)
        .await
        .unwrap();
    for (transfer, commit) in [(1_i64, true), (2, false)] {
        let mut tx = pool.begin().await.unwrap();
        let id: i64 = sqlx::query_scalar(
            "SELECT floodgate_enqueue(kind => 'transfer', payload => jsonb_build_object('id', $1::bigint))",
        )
        .bind(transfer)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO transfers (id, job) VALUES ($1, $2)")
            .bind(transfer)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        if commit {
            tx.commit().await.unwrap();
            assert_eq!(job(&store, id).await.payload, json!({"id": transfer}));
        } else {
            tx.rollback().await.unwrap();
            assert_eq!(store.job(JobId(id)).await.unwrap(), None, "rolled back");
        }
    }
    let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM transfers")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![1]);
    assert_eq!(store.list(&Default::default()).await.unwrap().jobs.len(), 1);
}

/// Field by field, defaults included: what the function writes is what `Store::enqueue`
/// writes for the same inputs (ids and clocks aside).
#[tokio::test]
async fn the_function_writes_the_row_store_enqueue_writes() {
    let Some((schema, store)) = setup("sql_same_row").await else {
        return;
    };
    let pool = own_pool(&schema, 1).await;
    let at = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678901Z")
        .unwrap()
        .to_utc();
    let payload = json!({"to": "ada@example.com", "n": [1, 2.5, null, true], "s": "é\"\\"});
    let full = NewJob::new("email", payload.clone())
        .queue("mail")
        .priority(9)
        .run_at(at)
        .max_attempts(3)
        .idempotency_key("welcome:ada")
        .ordering_key("ada")
        .metadata(json!({"tenant": 7}));
    let by_store = store.enqueue(full).await.unwrap().id;
    let by_sql: i64 = sqlx::query_scalar(
        "SELECT floodgate_enqueue(kind => 'email', payload => $1, queue => 'mail2', priority => 9, \
         run_at => $2, max_attempts => 3, idempotency_key => 'welcome:ada', ordering_key => 'ada', \
         metadata => '{\"tenant\": 7}')",
    )
    .bind(&payload)
    .bind(at)
    .fetch_one(&pool)
    .await
    .unwrap();
    let (a, mut b) = (job(&store, by_store.0).await, job(&store, by_sql).await);
    assert_eq!(b.queue, "mail2");
    b.queue = a.queue.clone();
    assert_same(&a, &b, true);

    let plain_store = store
        .enqueue(NewJob::new("k", json!(null)))
        .await
        .unwrap()
        .id;
    let plain_sql: i64 = sqlx::query_scalar("SELECT floodgate_enqueue('k')")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (a, b) = (
        job(&store, plain_store.0).await,
        job(&store, plain_sql).await,
    );
    assert_same(&a, &b, false);
    assert!(
        (b.run_at - b.created_at).num_milliseconds().abs() < 1_000,
        "run_at defaults to now"
    );
}

fn assert_same(a: &Job, b: &Job, same_run_at: bool) {
    let strip = |j: &Job| {
        let mut j = j.clone();
        j.id = JobId(0);
        j.created_at = chrono::DateTime::UNIX_EPOCH;
        j.updated_at = chrono::DateTime::UNIX_EPOCH;
        if !same_run_at {
            j.run_at = chrono::DateTime::UNIX_EPOCH;
        }
        j
    };
    assert_eq!(strip(a), strip(b));
}

/// Every rule of the Rust enqueue, refused in the database with its own SQLSTATE and a
/// message naming the argument and the limit; nothing is written.
#[tokio::test]
async fn every_rule_is_refused_with_its_sqlstate() {
    let Some(schema) = floodgate_testing::postgres_schema("sql_rules").await else {
        return;
    };
    let store = crate::support::pg_builder(&schema)
        .max_payload_bytes(1_000)
        .connect()
        .await
        .unwrap();
    let pool = own_pool(&schema, 1).await;
    let long = "x".repeat(256);
    let deep = format!("{}1{}", "[".repeat(128), "]".repeat(128));
    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT floodgate_enqueue(kind => '')".into(), sql::NAME_MISSING, "kind: must not be empty"),
        ("SELECT floodgate_enqueue(kind => NULL)".into(), sql::NAME_MISSING, "kind: must not be null"),
        ("SELECT floodgate_enqueue('k', queue => '')".into(), sql::NAME_MISSING, "queue: must not be empty"),
        ("SELECT floodgate_enqueue('k', idempotency_key => '')".into(), sql::NAME_MISSING, "idempotency_key: must not be empty"),
        (format!("SELECT floodgate_enqueue('{long}')"), sql::NAME_TOO_LONG, "kind: is 256 characters long; at most 255"),
        (format!("SELECT floodgate_enqueue('k', queue => '{long}')"), sql::NAME_TOO_LONG, "queue: is 256"),
        (format!("SELECT floodgate_enqueue('k', ordering_key => '{long}')"), sql::NAME_TOO_LONG, "ordering_key: is 256"),
        (format!("SELECT floodgate_enqueue('k', idempotency_key => '{long}')"), sql::NAME_TOO_LONG, "idempotency_key: is 256"),
        ("SELECT floodgate_enqueue('k', priority => 0)".into(), sql::PRIORITY_OUT_OF_RANGE, "priority: 0 is outside 1..=10"),
        ("SELECT floodgate_enqueue('k', priority => 11)".into(), sql::PRIORITY_OUT_OF_RANGE, "priority: 11 is outside 1..=10"),
        ("SELECT floodgate_enqueue('k', max_attempts => 0)".into(), sql::ATTEMPTS_OUT_OF_RANGE, "max_attempts: 0 is outside"),
        ("SELECT floodgate_enqueue('k', metadata => '[]')".into(), sql::NOT_JSON_SHAPE, "metadata: must be a JSON object"),
        ("SELECT floodgate_enqueue('k', payload => NULL)".into(), sql::NOT_JSON_SHAPE, "payload: must not be SQL NULL"),
        ("SELECT floodgate_enqueue('k', payload => to_jsonb(repeat('x', 1000)))".into(), sql::PAYLOAD_TOO_LARGE, "payload: is 1002 bytes of JSON; at most 1000"),
        (format!("SELECT floodgate_enqueue('k', payload => '{deep}')"), sql::TOO_DEEP, "payload: is nested 128 levels deep; at most 127"),
        (format!("SELECT floodgate_enqueue('k', metadata => jsonb_build_object('a', '{deep}'::jsonb))"), sql::TOO_DEEP, "metadata: is nested 129 levels deep"),
        ("SELECT floodgate_enqueue('k', payload => '\"a\\u0000b\"')".into(), "22P05", "unsupported Unicode escape sequence"),
        ("SELECT floodgate_enqueue_many('{}')".into(), sql::NOT_JSON_SHAPE, "jobs: must be a JSON array"),
        ("SELECT floodgate_enqueue_many('[1]')".into(), sql::NOT_JSON_SHAPE, "jobs[0]: must be a JSON object"),
        ("SELECT floodgate_enqueue_many('[{\"kind\": \"a\"}, {\"kind\": \"b\", \"prio\": 1}]')".into(), sql::UNKNOWN_FIELD, "jobs[1].prio: is not a job field"),
        ("SELECT floodgate_enqueue_many('[{\"kind\": \"a\"}, {\"kind\": \"b\", \"priority\": 12}]')".into(), sql::PRIORITY_OUT_OF_RANGE, "jobs[1].priority: 12 is outside 1..=10"),
        ("SELECT floodgate_enqueue_many('[{\"payload\": 1}]')".into(), sql::NAME_MISSING, "jobs[0].kind: must not be null"),
    ];
    for (statement, code, message) in cases {
        let err = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&pool)
            .await
            .expect_err(&statement);
        let (got_code, got_message) = refusal(err);
        assert_eq!(got_code, code, "{statement}: {got_message}");
        assert!(
            got_message.starts_with(message),
            "{statement}: {got_message}"
        );
    }
    // A NUL in a text argument never reaches the function: PostgreSQL refuses the value.
    let err = sqlx::query("SELECT floodgate_enqueue($1)")
        .bind("a\0b")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(refusal(err).0, "22021");
    // Just within the limits, all accepted.
    let fits = format!("{}1{}", "[".repeat(127), "]".repeat(127));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT floodgate_enqueue('{k}', queue => '{k}', payload => '{fits}', priority => 10, \
         idempotency_key => '{k}', max_attempts => 2147483647)",
        k = "é".repeat(255)
    )))
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        store.list(&Default::default()).await.unwrap().jobs.len(),
        1,
        "only the good one"
    );
}

/// Two transactions enqueue one idempotency key at once: the second waits for the first and
/// returns its job; had the first rolled back, the second writes its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_makes_one_job_even_when_two_transactions_race() {
    let Some((schema, store)) = setup("sql_race").await else {
        return;
    };
    let pool = own_pool(&schema, 2).await;
    let enqueue = "SELECT floodgate_enqueue('k', payload => $1, idempotency_key => $2)";
    for (key, first_commits) in [("race-commit", true), ("race-rollback", false)] {
        let mut first = pool.begin().await.unwrap();
        let first_id: i64 = sqlx::query_scalar(enqueue)
            .bind(json!("first"))
            .bind(key)
            .fetch_one(&mut *first)
            .await
            .unwrap();
        let second = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                let id: i64 = sqlx::query_scalar(enqueue)
                    .bind(json!("second"))
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                id
            }
        });
        // The second is blocked on the first's uncommitted key.
        crate::support::eventually_true("the second transaction waits on the key", || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'SELECT floodgate_enqueue%'",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            waiting == 1
        })
        .await;
        if first_commits {
            first.commit().await.unwrap();
        } else {
            first.rollback().await.unwrap();
        }
        let second_id = second.await.unwrap();
        let payload = job(&store, second_id).await.payload;
        if first_commits {
            assert_eq!(second_id, first_id, "one job for the key");
            assert_eq!(payload, json!("first"));
        } else {
            assert_ne!(second_id, first_id);
            assert_eq!(payload, json!("second"));
        }
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM floodgate_jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(count, 1);
    }
}

/// A job enqueued by SQL wakes listening workers at commit, as a Rust enqueue does; the batch
/// form returns its ids in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_wake_when_the_transaction_commits() {
    let Some((schema, store)) = setup("sql_wake").await else {
        return;
    };
    let pool = own_pool(&schema, 1).await;
    let mut wakeups = store
        .listen()
        .await
        .unwrap()
        .poll_interval(Duration::from_secs(3600));
    assert_eq!(wakeups.next().await, Wakeup::Poll);
    let mut tx = pool.begin().await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT floodgate_enqueue_many('[{\"kind\": \"a\", \"queue\": \"sql\"}, {\"kind\": \"b\", \"queue\": \"sql\", \"payload\": {\"x\": 1}, \"priority\": 8}]')",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), wakeups.next())
            .await
            .is_err(),
        "nothing before the commit"
    );
    tx.commit().await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), wakeups.next())
        .await
        .expect("woken at commit");
    assert_eq!(
        woke,
        Wakeup::Enqueued {
            queue: "sql".into()
        }
    );
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids in input order");
    let b = job(&store, ids[1]).await;
    assert_eq!(
        (b.kind.as_str(), b.priority, b.payload),
        ("b", 8, json!({"x": 1}))
    );
    let a = job(&store, ids[0]).await;
    assert_eq!((a.payload, a.metadata), (Value::Null, json!({})));
}

/// A store refuses a database whose functions are older than it knows, with the way out, and
/// the way out works.
#[tokio::test]
async fn outdated_functions_are_refused_at_connect() {
    let Some((schema, store)) = setup("sql_version").await else {
        return;
    };
    sqlx::query(
        "CREATE OR REPLACE FUNCTION floodgate_enqueue_version() RETURNS integer \
         LANGUAGE sql IMMUTABLE AS 'SELECT 0'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let err = crate::support::pg_builder(&schema)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Outdated {
                found: 0,
                expected: sql::ENQUEUE_VERSION,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("floodgate_enqueue is at version 0"), "{text}");
    let remedy = format!(
        "DELETE FROM \"{}\".floodgate_migrations WHERE version >= {}",
        schema.name(),
        sql::ENQUEUE_MIGRATION
    );
    assert!(text.contains(&remedy), "{text}");
    sqlx::query(sqlx::AssertSqlSafe(remedy))
        .execute(schema.pool())
        .await
        .unwrap();
    let store = crate::support::pg_builder(&schema).connect().await.unwrap();
    let version: i32 = sqlx::query_scalar("SELECT floodgate_enqueue_version()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(version, sql::ENQUEUE_VERSION);
    store.close().await;
}
