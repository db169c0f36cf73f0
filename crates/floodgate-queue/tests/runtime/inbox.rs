//! Exactly-once effects: 10,000 messages delivered twice, concurrently, by 4 consumers. The
//! effect inserts into a ledger whose key is unique, so an effect that ran twice would fail
//! the insert; every message must be in the ledger once, and half the deliveries counted as
//! duplicates. On both backends, then the keys' retention. (The effect's SQL belongs to one
//! database, so each backend's test is written out; what they check is the macro below.)

use std::sync::Arc;

use floodgate_queue::{Delivery, Inbox, OutboxStore};
use futures_util::future::BoxFuture;

const MESSAGES: usize = 10_000;

/// Delivers one message (by key); says whether its effect ran.
type Deliver = Arc<dyn Fn(String) -> BoxFuture<'static, Delivery<()>> + Send + Sync>;

async fn deliver_everything_twice(deliver: Deliver) {
    // Each consumer gets every other message once, in two passes with different orders, so
    // both copies of a message are in flight on different consumers at the same time.
    let tasks: Vec<_> = (0..4)
        .map(|c| {
            let deliver = deliver.clone();
            tokio::spawn(async move {
                let mut order: Vec<usize> = (0..MESSAGES).filter(|m| m % 2 == c % 2).collect();
                if c >= 2 {
                    order.reverse();
                }
                let (mut processed, mut duplicates) = (0, 0);
                for m in order {
                    match deliver(format!("msg-{m}")).await {
                        Delivery::Processed(()) => processed += 1,
                        Delivery::Duplicate => duplicates += 1,
                    }
                }
                (processed, duplicates)
            })
        })
        .collect();
    let (mut processed, mut duplicates) = (0, 0);
    for t in tasks {
        let (p, d) = t.await.unwrap();
        processed += p;
        duplicates += d;
    }
    assert_eq!(processed, MESSAGES);
    assert_eq!(duplicates, MESSAGES);
}

/// The per-backend deliver function: `process_once` with a ledger insert as the effect.
macro_rules! deliver {
    ($store:expr, $inbox:expr, $insert:literal) => {{
        let (store, inbox) = ($store.clone(), $inbox.clone());
        Arc::new(move |key: String| {
            let (store, inbox) = (store.clone(), inbox.clone());
            Box::pin(async move {
                let tx = store.begin().await.unwrap();
                let ledger_key = key.clone();
                inbox
                    .process_once(tx, "ledger-writer", &key, move |tx| {
                        Box::pin(async move {
                            sqlx::query($insert)
                                .bind(ledger_key)
                                .execute(&mut **tx)
                                .await
                        })
                    })
                    .await
                    .expect("no effect runs twice, so the ledger insert never conflicts")
                    .map_value()
            }) as BoxFuture<'static, Delivery<()>>
        }) as Deliver
    }};
}

trait MapValue {
    fn map_value(self) -> Delivery<()>;
}

impl<T> MapValue for Delivery<T> {
    fn map_value(self) -> Delivery<()> {
        match self {
            Delivery::Processed(_) => Delivery::Processed(()),
            Delivery::Duplicate => Delivery::Duplicate,
        }
    }
}

/// Every message delivered twice through `store`'s inbox with a ledger (made with `$create`,
/// written with `$insert`) as the effect: each message in the ledger once, half the deliveries
/// duplicates; then the keys are forgotten, none before their time.
macro_rules! effects_happen_exactly_once {
    ($store:expr, $create:literal, $insert:literal) => {{
        let store = $store;
        sqlx::query($create).execute(store.pool()).await.unwrap();
        let inbox = Arc::new(Inbox::with_cache_capacity(store.clone(), 1_000));
        deliver_everything_twice(deliver!(store, inbox, $insert)).await;
        assert_eq!(inbox.stats().processed as usize, MESSAGES);
        assert_eq!(inbox.stats().duplicates as usize, MESSAGES);
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows as usize, MESSAGES);
        // Retention: nothing is old enough yet, then everything is.
        let inbox = Inbox::new(store.clone());
        assert_eq!(
            inbox
                .forget_older_than(std::time::Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            inbox
                .forget_older_than(std::time::Duration::ZERO)
                .await
                .unwrap() as usize,
            MESSAGES
        );
        store.close().await;
    }};
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_effects_happen_exactly_once() {
    let harness = crate::support::sqlite().await;
    effects_happen_exactly_once!(
        &harness.store,
        "CREATE TABLE ledger (message_key TEXT PRIMARY KEY)",
        "INSERT INTO ledger (message_key) VALUES (?1)"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_effects_happen_exactly_once() {
    let Some(harness) = crate::support::postgres("inbox_once").await else {
        return;
    };
    effects_happen_exactly_once!(
        &harness.store,
        "CREATE TABLE ledger (message_key text PRIMARY KEY)",
        "INSERT INTO ledger (message_key) VALUES ($1)"
    );
}
