//! The relay's throughput and latency to a real broker: events in the store published to NATS
//! JetStream or RabbitMQ by the server's relay (the delivery engine and its worker, in this
//! process), with every acknowledgement awaited.
//!
//! ```sh
//! # throughput: 20,000 events enqueued first, then timed from the relay's start to the last ack
//! cargo run --release -p floodgate-server --example bench_relay -- --broker nats
//! cargo run --release -p floodgate-server --example bench_relay -- --broker rabbitmq
//! # latency: events enqueued at a steady rate while the relay runs, each timed from its
//! # enqueue (commit) to its arrival at a subscriber of the broker
//! cargo run --release -p floodgate-server --example bench_relay -- --broker nats --rate 5000
//! # on PostgreSQL (a fresh database is best)
//! cargo run --release -p floodgate-server --example bench_relay -- --database-url postgres://...
//! ```
//!
//! NATS at `nats://127.0.0.1:4222` (a memory stream of this run's own, deleted after);
//! RabbitMQ at `amqp://guest:guest@127.0.0.1:5672/%2f` (an exchange and exclusive queue of this
//! run's own). The broker shares the machine's cores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use floodgate_queue::{NewJob, Store};
use floodgate_server::config::Config;
use floodgate_server::relay::config::RelayConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The relay to a broker, measured.
#[derive(Debug, Parser)]
struct Args {
    /// The broker.
    #[arg(long, value_parser = ["nats", "rabbitmq"], default_value = "nats")]
    broker: String,
    /// A SQLite path (default: a temporary file) or postgres:// URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Events (throughput mode).
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Events per second, enqueued while the relay runs (latency mode); 0: throughput mode.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to enqueue for (latency mode).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Publishes awaiting their acknowledgement at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let run = format!("bench{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("floodgate-bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| dir.join("bench.db").to_string_lossy().into_owned());

    // The broker side: where the events go, and a subscriber timing their arrival.
    let arrivals: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut relay = RelayConfig {
        kinds: vec!["bench.event".into()],
        concurrency: args.concurrency,
        ..RelayConfig::default()
    };
    let cleanup: Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()>>;
    if args.broker == "nats" {
        let client = async_nats::connect("127.0.0.1:4222").await?;
        let js = async_nats::jetstream::new(client.clone());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: run.clone(),
            subjects: vec![format!("{run}.>")],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
        relay.url = "nats://127.0.0.1:4222".into();
        relay.subject = Some(format!("{run}.{{kind}}"));
        relay.stream = Some(run.clone());
        let mut sub = client.subscribe(format!("{run}.>")).await?;
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                record(&arrivals, &m.payload);
            }
        });
        let name = run.clone();
        cleanup = Box::new(move || {
            Box::pin(async move {
                let _ = js.delete_stream(&name).await;
            })
        });
    } else {
        use lapin::options::*;
        use lapin::types::FieldTable;
        let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                run.clone().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                run.clone().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                run.clone().into(),
                run.clone().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        relay.url = url.into();
        relay.exchange = Some(run.clone());
        let mut consumer = channel
            .basic_consume(
                run.clone().into(),
                "bench".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let _conn = conn;
            while let Some(Ok(d)) = consumer.next().await {
                record(&arrivals, &d.data);
            }
        });
        cleanup = Box::new(|| Box::pin(async {}));
    }

    let config = Config {
        database_url,
        relays: BTreeMap::from([("bench".to_owned(), relay)]),
        ..Config::default()
    };
    config.validate()?;
    let state = floodgate_server::state::AppState::open(config).await?;
    let store = state.store().clone();
    let delivery = state
        .deliveries()
        .get("bench.event")
        .expect("the relay")
        .clone();
    delivery.check().await?;
    let job = |n: u64| {
        NewJob::new("bench.event", json!({"n": n, "t": micros_now()}))
            .queue("relay")
            .group("bench")
    };
    let succeeded = || async {
        let stats = store.queue_stats().await.expect("stats");
        stats
            .iter()
            .filter(|q| q.queue == "relay")
            .map(|q| q.counts.succeeded)
            .sum::<u64>()
    };

    if args.rate == 0 {
        let mut n = 0;
        while n < args.events {
            let size = (args.events - n).min(1_000);
            store.enqueue_many((n..n + size).map(job).collect()).await?;
            n += size;
        }
        let started = Instant::now();
        let worker = delivery.clone().start(store.clone(), "bench", 64)?;
        // Timed by the subscriber (cheap to ask), then by the store every 100 ms (counting
        // the queue is not free, and would be part of what is measured).
        while (arrivals.lock().expect("arrivals").len() as u64) < args.events {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let arrived = started.elapsed();
        while succeeded().await < args.events {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = started.elapsed();
        worker.shutdown(Duration::from_secs(5)).await;
        println!(
            "relay to {} ({}), {} in flight: {} events published in {:.2} s = {:.0} events/s \
             (acks awaited); all completed within {:.2} s",
            args.broker,
            store.backend(),
            args.concurrency,
            args.events,
            arrived.as_secs_f64(),
            args.events as f64 / arrived.as_secs_f64(),
            elapsed.as_secs_f64(),
        );
    } else {
        let worker = delivery.clone().start(store.clone(), "bench", 64)?;
        let per_tick = (args.rate / 100).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let until = Instant::now() + Duration::from_secs(args.seconds);
        let mut n = 0;
        while Instant::now() < until {
            tick.tick().await;
            store
                .enqueue_many((n..n + per_tick).map(job).collect())
                .await?;
            n += per_tick;
        }
        while succeeded().await < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worker.shutdown(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut lat = arrivals.lock().expect("arrivals").clone();
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
        println!(
            "relay to {} ({}), {} events/s for {} s: {} events, {} arrivals; enqueue to arrival \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.broker,
            store.backend(),
            args.rate,
            args.seconds,
            n,
            lat.len(),
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
    }
    cleanup().await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn record(arrivals: &Mutex<Vec<u64>>, payload: &[u8]) {
    let now = micros_now();
    if let Ok(v) = serde_json::from_slice::<Value>(payload)
        && let Some(t) = v["t"].as_u64()
    {
        arrivals
            .lock()
            .expect("arrivals")
            .push(now.saturating_sub(t));
    }
}
