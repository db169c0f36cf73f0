//! The relay from Rust, without the server: a `Worker` whose handler is `relay::handler`
//! publishes its outbox to NATS JetStream and RabbitMQ, each job once, in order per ordering
//! key, and completes each with the broker's receipt. A broker that cannot be reached snoozes
//! the job (its attempt unspent); an unroutable RabbitMQ message fails with an error that says
//! so. Against the real brokers; skipped (or failed, with `FLOODGATE_REQUIRE_SERVICES=1`) when
//! they are not there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use floodgate_queue::relay::amqp::{Amqp, AmqpSettings};
use floodgate_queue::relay::jetstream::{JetStream, JetStreamSettings};
use floodgate_queue::relay::{self, Template};
use floodgate_queue::worker::{KindOptions, Worker};
use floodgate_queue::{JobId, JobState, NewJob, Store};
use serde_json::{Value, json};

use crate::support::{eventually, sqlite};

const JOBS: usize = 200;
const KEYS: usize = 4;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{label}{}x{nanos}", std::process::id())
}

/// Enqueues `JOBS` events over `KEYS` ordering keys; `n` numbers each key's events.
async fn enqueue_events<S: Store>(store: &S) -> Vec<JobId> {
    let mut per_key = [0u64; KEYS];
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let key = i % KEYS;
        per_key[key] += 1;
        let job = NewJob::new("order.created", json!({"key": key, "n": per_key[key]}))
            .queue("relay")
            .ordering_key(format!("customer-{key}"));
        ids.push(store.enqueue(job).await.expect("enqueue").id);
    }
    ids
}

fn in_order(payloads: &[Value]) {
    let mut last: HashMap<u64, u64> = HashMap::new();
    for p in payloads {
        let (key, n) = (p["key"].as_u64().unwrap(), p["n"].as_u64().unwrap());
        let before = last.insert(key, n).unwrap_or(0);
        assert_eq!(n, before + 1, "key {key}: {n} after {before}");
    }
}

#[tokio::test]
async fn a_rust_worker_relays_to_jetstream_once_each_in_order() {
    let url = nats_url();
    let client =
        match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url.as_str())).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return floodgate_testing::unavailable("NATS", &url, e).unwrap_or(()),
            Err(_) => {
                return floodgate_testing::unavailable("NATS", &url, "no answer").unwrap_or(());
            }
        };
    let js = async_nats::jetstream::new(client);
    let stream = unique("FGQ");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("fgq.{stream}.>")],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("create the test stream");
    let h = sqlite().await;
    let ids = enqueue_events(&h.store).await;
    let settings = JetStreamSettings::new(
        &url,
        Template::parse(&format!("fgq.{stream}.{{kind}}.{{key}}")).unwrap(),
    )
    .stream(&stream);
    let nats = Arc::new(JetStream::new("orders", settings).expect("settings"));
    assert_eq!(
        nats.check().await.expect("the stream").duplicate_window,
        Duration::from_secs(120)
    );
    let worker = Worker::builder(h.store.clone())
        .queues(["relay"])
        .concurrency(32)
        .handler("order.created", KindOptions::new(), relay::handler(nats))
        .build()
        .expect("a worker")
        .start();
    for id in &ids {
        let job = eventually(&h.store, *id, JobState::Succeeded).await;
        let result = job.result.expect("the receipt");
        assert_eq!(result["stream"], json!(stream), "{result}");
        assert_eq!(result["duplicate"], json!(false), "{result}");
    }
    worker.shutdown(Duration::from_secs(5)).await;
    let mut s = js.get_stream(&stream).await.expect("the stream");
    let total = s.info().await.expect("info").state.messages;
    let mut seen = HashSet::new();
    let mut payloads = Vec::new();
    for seq in 1..=total {
        let m = s.get_raw_message(seq).await.expect("a message");
        let id = m.headers.get("Nats-Msg-Id").expect("an id").to_string();
        assert!(seen.insert(id), "a message id twice");
        assert_eq!(
            m.headers.get("Floodgate-Kind").map(|v| v.to_string()),
            Some("order.created".to_owned())
        );
        payloads.push(serde_json::from_slice::<Value>(&m.payload).expect("JSON"));
    }
    js.delete_stream(&stream)
        .await
        .expect("delete the test stream");
    assert_eq!(total as usize, JOBS);
    in_order(&payloads);
}

#[tokio::test]
async fn an_unreachable_broker_snoozes_the_job_without_spending_its_attempt() {
    let h = sqlite().await;
    // Nothing listens on port 1.
    let settings = JetStreamSettings::new("nats://127.0.0.1:1", Template::parse("x").unwrap());
    let nats = Arc::new(JetStream::new("nowhere", settings).expect("settings"));
    let id = h
        .store
        .enqueue(NewJob::new("order.created", json!({})).queue("relay"))
        .await
        .expect("enqueue")
        .id;
    let worker = Worker::builder(h.store.clone())
        .queues(["relay"])
        .handler("order.created", KindOptions::new(), relay::handler(nats))
        .build()
        .expect("a worker")
        .start();
    crate::support::eventually_true("the job is snoozed", || async {
        let job = h.store.job(id).await.expect("read").expect("the job");
        job.state == JobState::Pending && job.run_at > job.created_at
    })
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    let job = h.store.job(id).await.expect("read").expect("the job");
    assert_eq!((job.state, job.attempt), (JobState::Pending, 0), "{job:?}");
}

#[tokio::test]
async fn a_rust_worker_relays_to_rabbitmq_and_an_unroutable_message_fails_clearly() {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let url = amqp_url();
    let connect = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
    let connection = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return floodgate_testing::unavailable("RabbitMQ", &url, e).unwrap_or(()),
        Err(_) => {
            return floodgate_testing::unavailable("RabbitMQ", &url, "no answer").unwrap_or(());
        }
    };
    let name = unique("fgq.");
    let channel = connection.create_channel().await.expect("a channel");
    let auto = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.clone().into(),
            lapin::ExchangeKind::Topic,
            auto,
            FieldTable::default(),
        )
        .await
        .expect("declare the exchange");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.clone().into(), exclusive, FieldTable::default())
        .await
        .expect("declare the queue");
    channel
        .queue_bind(
            name.clone().into(),
            name.clone().into(),
            "order.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind it");
    let h = sqlite().await;
    let ids = enqueue_events(&h.store).await;
    let lost = h
        .store
        .enqueue(NewJob::new("nobody.listens", json!({})).queue("relay"))
        .await
        .expect("enqueue")
        .id;
    let settings = AmqpSettings::new(&url, name.clone(), Template::parse("{kind}.{key}").unwrap());
    let rabbit = Arc::new(Amqp::new("orders", settings).expect("settings"));
    rabbit.check().await.expect("the exchange exists");
    let worker = Worker::builder(h.store.clone())
        .queues(["relay"])
        .concurrency(32)
        .handler(
            "order.created",
            KindOptions::new(),
            relay::handler(rabbit.clone()),
        )
        .handler("nobody.listens", KindOptions::new(), relay::handler(rabbit))
        .build()
        .expect("a worker")
        .start();
    for id in &ids {
        eventually(&h.store, *id, JobState::Succeeded).await;
    }
    crate::support::eventually_true("the unroutable job failed", || async {
        let job = h.store.job(lost).await.expect("read").expect("the job");
        job.last_error.is_some()
    })
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
    let job = h.store.job(lost).await.expect("read").expect("the job");
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("unroutable") && error.contains("nothing is bound"),
        "{error}"
    );
    // Everything bound arrived, each with its job id, in order per key.
    let mut payloads = Vec::new();
    let mut ids_seen = HashSet::new();
    for _ in 0..JOBS {
        let got = channel
            .basic_get(
                name.clone().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("a get")
            .expect("a message");
        let id = got
            .properties
            .message_id()
            .as_ref()
            .expect("a message id")
            .to_string();
        assert!(ids_seen.insert(id));
        payloads.push(serde_json::from_slice::<Value>(&got.data).expect("JSON"));
    }
    in_order(&payloads);
    let expected: HashSet<String> = ids.iter().map(|i| i.0.to_string()).collect();
    assert_eq!(ids_seen, expected);
}
