//! The transactional outbox: an order row and its `order_placed` event commit in one
//! transaction, so there is never an order without its event or an event without its order.
//! A relay then claims the events and publishes them, each completion fenced by its lease.
//!
//! ```sh
//! cargo run -p floodgate-queue --example outbox        # embedded SQLite, no setup
//! ```

use floodgate_queue::{Claim, NewJob, OutboxStore, SqliteStore, Store, StoreError};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir();
    let store = SqliteStore::open(dir.join("shop.db")).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (
            id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total_cents INTEGER NOT NULL
                CHECK (total_cents > 0))",
    )
    .execute(store.pool())
    .await?;

    // 1. Place two orders; the second violates a business rule and rolls back with its event.
    for (id, customer, total) in [(1, "ada", 4_200), (2, "bob", -5)] {
        match place_order(&store, id, customer, total).await {
            Ok((event, _)) => println!("order {id} placed, event job {event}"),
            Err(e) => println!("order {id} rejected, and no event was written: {e}"),
        }
    }
    // A client retrying the same request does not produce a second event.
    match place_order(&store, 1, "ada", 4_200).await? {
        (event, false) => println!(
            "order 1 placed again (a client retry): no new event; the idempotency key found \
             event job {event}"
        ),
        (event, true) => println!("order 1 placed again: a DUPLICATE event job {event}"),
    }

    // 2. The relay: claim events, publish them, record success. A relay that lost its lease
    //    (paused past it, say) gets `LeaseLost` and must not treat the event as published.
    loop {
        let events = store
            .claim(&Claim::new("relay-1", 100).queues(["outbox"]))
            .await?;
        if events.is_empty() {
            break;
        }
        for event in events {
            println!("publishing {} {}", event.kind, event.payload);
            match store.complete(event.lease().expect("claimed"), None).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost { id }) => println!("lost the lease of {id}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(store.pool())
        .await?;
    let stats = store.queue_stats().await?;
    println!(
        "{orders} order(s); outbox: {} published, {} waiting",
        stats[0].counts.succeeded, stats[0].counts.pending
    );
    store.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Inserts the order and enqueues its event in one transaction; the event's id, and whether
/// it is new (`false`: a retry found the event already there).
async fn place_order(
    store: &SqliteStore,
    id: i64,
    customer: &str,
    total_cents: i64,
) -> Result<(i64, bool), Box<dyn std::error::Error>> {
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO orders (id, customer, total_cents) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(customer)
        .bind(total_cents)
        .execute(&mut *tx)
        .await?;
    let event = NewJob::new("order_placed", json!({ "order": id, "customer": customer }))
        .queue("outbox")
        .idempotency_key(format!("order_placed:{id}"))
        .ordering_key(format!("customer:{customer}"));
    let enqueued = store.enqueue_in(&mut tx, event).await?;
    tx.commit().await?;
    Ok((enqueued.id.0, enqueued.inserted))
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
