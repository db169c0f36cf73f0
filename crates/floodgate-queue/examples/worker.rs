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
use floodgate_queue::maintenance::{Maintenance, Periodic};
use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker, WorkerEvent};
use floodgate_queue::{
    Delivery, Inbox, JobState, NewJob, OutboxStore, Singleton, SqliteStore, Store,
};
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
            .handler("tick", KindOptions::new(), |job, _| async move {
                println!(
                    "  ⏱ periodic job #{} (enqueued by the maintenance leader)",
                    job.id
                );
                Ok(Outcome::done())
            })
            .build()?
            .start();
    let mut events = worker.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                WorkerEvent::Succeeded { id, kind, took } if kind != "tick" => {
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
    // Maintenance (rescue of expired leases, retention, cron jobs) runs on one node at a
    // time: the holder of the "maintenance" role. Here that is this process.
    let role = Singleton::lease(
        store.clone(),
        "maintenance",
        "demo-worker",
        Duration::from_secs(10),
    );
    let maintenance = Maintenance::new(store.clone())
        .periodic(Periodic::new(
            "tick",
            "* * * * * *", // every second
            NewJob::new("tick", json!({})),
        )?)
        // A new leader enqueues occurrences missed in this window (a fresh database: none).
        .catch_up(Duration::from_secs(1))
        .start(role.clone());
    role.wait_until_leader().await;
    println!("this process leads maintenance: rescuer, cleaner and a periodic job every second");

    println!("enqueueing 10 emails and one job that always fails (3 attempts)");
    let emails = (0..10)
        .map(|n| {
            NewJob::new(
                "send_email",
                json!({ "to": format!("user{n}@example.com") }),
            )
        })
        .collect();
    let first_email = store.enqueue_many(emails).await?[0].id;
    let flaky = store
        .enqueue(NewJob::new("flaky", json!({})).max_attempts(3))
        .await?
        .id;

    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("Ctrl-C: shutting down"),
        _ = async {
            let ticked = || async {
                store.queue_stats().await.ok().and_then(|stats| {
                    stats.iter().find(|q| q.queue == "default").map(|q| q.counts.succeeded)
                }).unwrap_or(0) > 11
            };
            while store.job(flaky).await.ok().flatten().is_some_and(|j| j.state != JobState::Dead)
                || !ticked().await
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }

    // A broker or a crashed worker may deliver the same message twice: the inbox recorded
    // the first delivery's key with its effect, so a second one changes nothing.
    let again = inbox
        .process_once(
            store.begin().await?,
            "mailer",
            &format!("email:{first_email}"),
            |tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO sent (email) VALUES ('duplicate')")
                        .execute(&mut **tx)
                        .await
                })
            },
        )
        .await?;
    println!(
        "delivering email #{first_email} again: {}",
        match again {
            Delivery::Duplicate => "skipped by the inbox, no second email",
            Delivery::Processed(_) => "sent twice (this must not happen)",
        }
    );

    let summary = worker.shutdown(Duration::from_secs(10)).await;
    maintenance.stop().await;
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM sent")
        .fetch_one(store.pool())
        .await?;
    let stats = store.queue_stats().await?;
    let counts = &stats
        .iter()
        .find(|q| q.queue == "default")
        .expect("the queue")
        .counts;
    println!(
        "{sent} emails in the `sent` table (one per email job); jobs: {} succeeded, {} dead",
        counts.succeeded, counts.dead
    );
    println!(
        "inbox: {} processed, {} duplicate(s) skipped",
        inbox.stats().processed,
        inbox.stats().duplicates
    );
    println!(
        "shutdown: {} job(s) were running and finished, {} released for another worker",
        summary.finished, summary.released
    );
    store.close().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
