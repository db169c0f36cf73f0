//! A worker on the embedded SQLite store, no setup needed: emails under a per-kind limit and
//! a breaker, a flaky kind that retries then goes dead, periodic maintenance by the leader,
//! an idempotent consumer, and a graceful shutdown on Ctrl-C or after the demo.
//!
//! ```sh
//! cargo run -p floodgate-queue --example worker
//! ```

use std::sync::Arc;
use std::time::Duration;

use floodgate::breaker::CircuitBreaker;
use floodgate::retry::{ExponentialBackoff, Jitter};
use floodgate_queue::maintenance::Maintenance;
use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker, WorkerEvent};
use floodgate_queue::{Delivery, Inbox, JobState, NewJob, Singleton, SqliteStore, Store};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Email {
    to: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("floodgate-worker-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(dir.join("jobs.db")).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS sent (email TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    let inbox = Arc::new(Inbox::new(store.clone()));

    let send = {
        let (store, inbox) = (store.clone(), inbox.clone());
        move |email: Email, ctx: floodgate_queue::worker::JobContext| {
            let (store, inbox) = (store.clone(), inbox.clone());
            async move {
                // Exactly once even if this job runs again after a crash.
                let tx = store.begin().await.map_err(JobError::retry)?;
                let key = format!("email:{}", ctx.job_id());
                let delivery = inbox
                    .process_once(tx, "mailer", &key, move |tx| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO sent (email) VALUES (?1)")
                                .bind(email.to)
                                .execute(&mut **tx)
                                .await
                        })
                    })
                    .await
                    .map_err(JobError::retry)?;
                let fresh = matches!(delivery, Delivery::Processed(_));
                Ok(Outcome::with_result(json!({ "sent": fresh })))
            }
        }
    };
    let worker =
        Worker::builder(store.clone())
            .id("demo-worker")
            .concurrency(8)
            .typed_handler(
                "send_email",
                KindOptions::new()
                    .max_concurrency(4)
                    .priority(10)
                    .breaker(CircuitBreaker::new("smtp"))
                    .timeout(Duration::from_secs(10)),
                send,
            )
            .handler(
                "flaky",
                KindOptions::new().retry(
                    ExponentialBackoff::new(Duration::from_millis(50))
                        .max_attempts(u32::MAX)
                        .jitter(Jitter::Full),
                ),
                |_, ctx| async move {
                    Err(JobError::retry(format!("attempt {} failed", ctx.attempt())))
                },
            )
            .build()?
            .start();
    let mut events = worker.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                WorkerEvent::Succeeded { id, kind, took } => {
                    println!("  ✔ {kind} #{id} in {took:?}")
                }
                WorkerEvent::Failed {
                    id, kind, error, ..
                } => println!("  ↻ {kind} #{id}: {error}"),
                WorkerEvent::Dead { id, kind, error } => println!("  ✘ {kind} #{id} dead: {error}"),
                _ => {}
            }
        }
    });
    let role = Singleton::lease(
        store.clone(),
        "maintenance",
        "demo-worker",
        Duration::from_secs(10),
    );
    let maintenance = Maintenance::new(store.clone()).start(role);

    println!("enqueueing 10 emails and one job that always fails (3 attempts)");
    let emails = (0..10)
        .map(|n| {
            NewJob::new(
                "send_email",
                json!({ "to": format!("user{n}@example.com") }),
            )
        })
        .collect();
    store.enqueue_many(emails).await?;
    let flaky = store
        .enqueue(NewJob::new("flaky", json!({})).max_attempts(3))
        .await?
        .id;

    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("Ctrl-C: shutting down"),
        _ = async {
            while store.job(flaky).await.ok().flatten().is_some_and(|j| j.state != JobState::Dead) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }
    let summary = worker.shutdown(Duration::from_secs(10)).await;
    maintenance.stop().await;
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM sent")
        .fetch_one(store.pool())
        .await?;
    println!("{sent} emails sent; shutdown: {summary:?}");
    store.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
