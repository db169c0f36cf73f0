//! The outbox relayed to real brokers by the real binary: 10,000 events enqueued inside
//! business transactions (`floodgate_enqueue` next to an `INSERT`, on PostgreSQL) while the
//! relaying server is killed with `kill -9` five times and restarted.
//!
//! - NATS JetStream: the stream holds each event exactly once (as many distinct message ids as
//!   messages, as many as events), in order per ordering key.
//! - RabbitMQ: every event arrives at least once, each arrival carries the job id as its
//!   `message_id`, in order per ordering key where it was not repeated, and a consumer using
//!   an `Inbox` applies each effect exactly once.
//! - A broker cut off mid-run (through a fault proxy): nothing goes dead, `/health/ready`
//!   names the broker, and the flow resumes when it is back.
//! - Settings that cannot work (a stream or exchange that does not exist, a bad URL) stop the
//!   server at start with the key and the fix.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::PgDatabase;
use crate::support::process::{BIN, Server, http, shared_machine, within};
use crate::support::proxy::Proxy;

const EVENTS: usize = 10_000;
const KEYS: usize = 40;
const PER_TX: usize = 50;
const KILLS: usize = 5;

/// A runtime whose worker drives the connections made on it while the test thread waits
/// (a broker client's I/O runs as a task there).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A JetStream context, or `None` (after saying why) when NATS is not there.
async fn jetstream() -> Option<async_nats::jetstream::Context> {
    let url = nats_url();
    match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url.as_str())).await {
        Ok(Ok(client)) => Some(async_nats::jetstream::new(client)),
        Ok(Err(e)) => floodgate_testing::unavailable("NATS", &url, e),
        Err(_) => floodgate_testing::unavailable("NATS", &url, "no answer within 5 s"),
    }
}

async fn rabbit() -> Option<lapin::Connection> {
    let url = amqp_url();
    let connect = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => floodgate_testing::unavailable("RabbitMQ", &url, e),
        Err(_) => floodgate_testing::unavailable("RabbitMQ", &url, "no answer within 5 s"),
    }
}

/// A topic exchange `name` (deleted with its last binding) and an exclusive queue `name` bound
/// to everything on it (deleted with the connection): what a test's relay publishes to.
async fn exchange_and_queue(connection: &lapin::Connection, name: &str) -> lapin::Channel {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let channel = connection.create_channel().await.expect("a channel");
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            auto_delete,
            FieldTable::default(),
        )
        .await
        .expect("declare the test exchange");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), exclusive, FieldTable::default())
        .await
        .expect("declare the test queue");
    channel
        .queue_bind(
            name.into(),
            name.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind it");
    channel
}

/// A name no other run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{label}{}x{nanos}", std::process::id())
}

fn write_config(dir: &std::path::Path, relay: &str) -> String {
    let path = dir.join("floodgate.toml");
    std::fs::write(&path, format!("rescue_interval = 1\n{relay}")).expect("write the settings");
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// Enqueues `EVENTS` events in transactions of `PER_TX`, each next to a business row, with
/// `KEYS` ordering keys; `n` numbers each key's events in order.
fn enqueue_events(db_url: &str, enqueued: &AtomicU64) {
    runtime().block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(db_url)
            .await
            .expect("connect to the test database");
        sqlx::query("CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, n bigint)")
            .execute(&pool)
            .await
            .expect("create the business table");
        let mut per_key = vec![0u64; KEYS];
        for tx_no in 0..EVENTS / PER_TX {
            let mut tx = pool.begin().await.expect("begin");
            for i in 0..PER_TX {
                let event = tx_no * PER_TX + i;
                let key = event % KEYS;
                per_key[key] += 1;
                sqlx::query("INSERT INTO orders (n) VALUES ($1)")
                    .bind(event as i64)
                    .execute(&mut *tx)
                    .await
                    .expect("the business row");
                sqlx::query(
                    "SELECT floodgate_enqueue(kind => 'order.created', payload => $1::jsonb, \
                     queue => 'relay', ordering_key => $2)",
                )
                .bind(json!({"event": event, "key": key, "n": per_key[key]}))
                .bind(format!("customer-{key}"))
                .execute(&mut *tx)
                .await
                .expect("the event");
            }
            tx.commit().await.expect("commit");
            enqueued.fetch_add(PER_TX as u64, Ordering::SeqCst);
        }
    });
}

/// Runs the server with `relay` settings while `EVENTS` events are enqueued, killing it with
/// `kill -9` `KILLS` times as `published()` grows, until every event's job has succeeded: how
/// many jobs the broker acknowledged as duplicates (published again after a kill).
fn relay_through_kills(label: &str, relay: &str, published: &dyn Fn() -> u64) -> Option<u64> {
    let db = PgDatabase::create(label)?;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), relay);
    let args = ["--config", config.as_str()];
    let mut server = Server::start_with(&db.url, dir.path(), &args);
    let enqueued = Arc::new(AtomicU64::new(0));
    let producer = thread::spawn({
        let (url, enqueued) = (db.url.clone(), enqueued.clone());
        move || enqueue_events(&url, &enqueued)
    });
    let started = Instant::now();
    let mut kills = 0;
    let mut last = 0;
    while kills < KILLS {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{kills} kills in 4 minutes: only {} published",
            published()
        );
        let now = published();
        if now >= last + (EVENTS / (KILLS + 2)) as u64 {
            server.child.kill().expect("kill -9 the relaying server");
            server.child.wait().expect("reap it");
            kills += 1;
            last = now;
            server = Server::start_with(&db.url, dir.path(), &args);
        }
        thread::sleep(Duration::from_millis(50));
    }
    producer.join().expect("the producer");
    let port = server.port;
    let count = |state: &str| {
        let path = format!("/v1/jobs/count?state={state}&queue=relay");
        let (status, body) = http("GET", port, &path, None);
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().expect("a count")
    };
    within(Duration::from_secs(120), || match count("succeeded") {
        n if n == EVENTS as u64 => Ok(()),
        n => {
            let (_, waiting) = http(
                "GET",
                port,
                "/v1/jobs?queue=relay&state=pending&limit=2",
                None,
            );
            let (_, running) = http(
                "GET",
                port,
                "/v1/jobs?queue=relay&state=running&limit=2",
                None,
            );
            Err((
                n,
                count("dead"),
                count("failed"),
                published(),
                waiting,
                running,
            ))
        }
    });
    assert_eq!(count("dead"), 0);
    let republished = runtime().block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .expect("connect to the test database");
        // Jobs published more than once: the broker said it had the message already, or the
        // job ran again after a kill (its run count is in `attempt` + its rescues).
        let flagged: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM floodgate_jobs WHERE result->>'duplicate' = 'true'",
        )
        .fetch_one(&pool)
        .await
        .expect("count the duplicates");
        flagged as u64
    });
    println!(
        "{label}: {EVENTS} events relayed through {KILLS} kill -9 in {:?}; {republished} \
         acknowledged as duplicates by the broker",
        started.elapsed()
    );
    Some(republished)
}

/// Checks each key's events came in order, given the arrivals as (message id, payload).
fn in_order_per_key(arrivals: &[(String, Value)]) {
    let mut last: HashMap<u64, u64> = HashMap::new();
    for (id, payload) in arrivals {
        let key = payload["key"].as_u64().expect("a key");
        let n = payload["n"].as_u64().expect("an n");
        let before = last.insert(key, n).unwrap_or(0);
        assert_eq!(
            n,
            before + 1,
            "key {key}: event {n} (message {id}) came after {before}"
        );
    }
}

#[test]
fn jetstream_holds_each_event_exactly_once_through_kill_9() {
    let _machine = shared_machine();
    let rt = runtime();
    let Some(js) = rt.block_on(jetstream()) else {
        return;
    };
    let name = unique("FGT");
    let subjects = format!("fgt.{name}");
    rt.block_on(js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subjects}.>")],
        duplicate_window: Duration::from_secs(120),
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    }))
    .expect("create the test stream");
    let relay = format!(
        "[relays.orders]\nurl = \"{}\"\nkinds = [\"order.created\"]\nsubject = \
         \"{subjects}.{{kind}}.{{key}}\"\nstream = \"{name}\"\nlease_ttl = 2\nack_timeout = 2\n",
        nats_url()
    );
    let count = || {
        runtime().block_on(async {
            let js = jetstream().await.expect("NATS");
            let mut stream = js.get_stream(&name).await.expect("the stream");
            stream.info().await.expect("its info").state.messages
        })
    };
    let done = relay_through_kills("relay_js", &relay, &count);
    let arrivals = rt.block_on(async {
        let mut stream = js.get_stream(&name).await.expect("the stream");
        let total = stream.info().await.expect("its info").state.messages;
        let mut arrivals = Vec::new();
        for seq in 1..=total {
            let message = stream.get_raw_message(seq).await.expect("a message");
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .expect("a Nats-Msg-Id");
            let payload: Value = serde_json::from_slice(&message.payload).expect("JSON");
            arrivals.push((id, payload));
        }
        js.delete_stream(&name)
            .await
            .expect("delete the test stream");
        arrivals
    });
    let Some(duplicates) = done else {
        return;
    };
    let ids: HashSet<&str> = arrivals.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        (arrivals.len(), ids.len()),
        (EVENTS, EVENTS),
        "(messages, distinct ids) in the stream"
    );
    in_order_per_key(&arrivals);
    // The kills land while hundreds of publishes are in flight: some jobs were published and
    // not yet completed, so they were published again, and the stream dropped the repeats.
    assert!(
        duplicates > 0,
        "no job was published twice: the kills never tested the duplicate window"
    );
}

#[test]
fn rabbitmq_delivers_every_event_and_an_inbox_applies_each_once() {
    let _machine = shared_machine();
    let rt = runtime();
    let Some(connection) = rt.block_on(rabbit()) else {
        return;
    };
    let name = unique("fgt.");
    let channel = rt.block_on(exchange_and_queue(&connection, &name));
    // The consumer: an inbox (SQLite) applies each event's effect once, in the same
    // transaction as its id; every arrival is kept too.
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let inbox_dir = tempfile::tempdir().expect("a temporary directory");
    let consumer = thread::spawn({
        let (arrivals, stop, name) = (arrivals.clone(), stop.clone(), name.clone());
        let path = inbox_dir.path().join("inbox.db");
        move || consume(channel, &name, &path, &arrivals, &stop)
    });
    let relay = format!(
        "[relays.orders]\nurl = \"{}\"\nkinds = [\"order.created\"]\nexchange = \"{name}\"\n\
         routing_key = \"{{kind}}.{{key}}\"\nlease_ttl = 2\nack_timeout = 2\n",
        amqp_url()
    );
    let count = || arrivals.lock().unwrap().len() as u64;
    let done = relay_through_kills("relay_mq", &relay, &count);
    within(Duration::from_secs(30), || {
        let ids: HashSet<String> = arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        match ids.len() {
            n if n == EVENTS => Ok(()),
            n => Err(n),
        }
    });
    stop.store(true, Ordering::SeqCst);
    let (effects, duplicates) = consumer.join().expect("the consumer");
    if done.is_none() {
        return;
    }
    let arrivals = arrivals.lock().unwrap();
    let ids: HashSet<&str> = arrivals.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), EVENTS, "distinct message ids");
    assert_eq!(effects, EVENTS as u64, "effects applied");
    assert_eq!(
        duplicates,
        (arrivals.len() - EVENTS) as u64,
        "every repeat was dropped by the inbox"
    );
    // Order per key holds over the first arrival of each event.
    let mut seen = HashSet::new();
    let firsts: Vec<(String, Value)> = arrivals
        .iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .cloned()
        .collect();
    in_order_per_key(&firsts);
    println!(
        "RabbitMQ: {} arrivals of {EVENTS} events ({duplicates} repeats, dropped by the inbox)",
        arrivals.len()
    );
}

/// Consumes until `stop`, recording every arrival and applying each through an inbox: the
/// effects applied and the duplicates dropped.
fn consume(
    channel: lapin::Channel,
    queue: &str,
    inbox_path: &std::path::Path,
    arrivals: &std::sync::Mutex<Vec<(String, Value)>>,
    stop: &AtomicBool,
) -> (u64, u64) {
    use floodgate_queue::{Delivery, Inbox, OutboxStore, SqliteStore};
    use lapin::options::{BasicAckOptions, BasicConsumeOptions};
    runtime().block_on(async {
        let store = SqliteStore::open(inbox_path)
            .await
            .expect("the inbox store");
        sqlx::query("CREATE TABLE effects (event INTEGER PRIMARY KEY)")
            .execute(store.pool())
            .await
            .expect("the effects table");
        let inbox = Inbox::new(store.clone());
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "fgt".into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("consume");
        let mut duplicates = 0;
        while !stop.load(Ordering::SeqCst) {
            let next = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
            let Ok(Some(Ok(delivery))) = next else {
                continue;
            };
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .expect("every message carries the job id");
            let payload: Value = serde_json::from_slice(&delivery.data).expect("JSON");
            arrivals.lock().unwrap().push((id.clone(), payload.clone()));
            let event = payload["event"].as_i64().expect("an event number");
            let tx = store.begin().await.expect("begin");
            let applied = inbox
                .process_once(tx, "test-consumer", &id, |tx| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO effects (event) VALUES (?)")
                            .bind(event)
                            .execute(&mut **tx)
                            .await
                    })
                })
                .await
                .expect("the inbox");
            if matches!(applied, Delivery::Duplicate) {
                duplicates += 1;
            }
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(store.pool())
            .await
            .expect("count the effects");
        (effects as u64, duplicates)
    })
}

/// The relay `relay` (its broker reached through `proxy`) relays 100 `tick` jobs; the proxy
/// cuts the broker off; 200 more are enqueued and wait (no attempt spent, none dead,
/// `/health/ready` still 200 with a warning naming the relay); the proxy restores it and all
/// 300 are published, each at least once (`delivered()` counts the distinct job ids the
/// broker has).
fn cut_mid_run(proxy: &Proxy, relay: &str, delivered: &dyn Fn() -> usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), relay);
    let server = Server::start_with(
        dir.path().join("jobs.db").to_str().expect("a UTF-8 path"),
        dir.path(),
        &["--config", &config],
    );
    let port = server.port;
    let enqueue = |n: usize| {
        for i in 0..n {
            let job = json!({"kind": "tick", "payload": {"i": i}});
            let (status, body) = http("POST", port, "/v1/jobs", Some(&job));
            assert_eq!(status, 202, "{body}");
            if i == 0 {
                let (_, job) = http("GET", port, &format!("/v1/jobs/{}", body["id"]), None);
                assert_eq!(
                    job["queue"], "relay",
                    "a relayed kind goes to its relay's queue"
                );
                assert_eq!(
                    job["metadata"]["group"], "events",
                    "and to its relay's group: {job}"
                );
            }
        }
    };
    let count = |state: &str| {
        let (status, body) = http("GET", port, &format!("/v1/jobs/count?state={state}"), None);
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().expect("a count")
    };
    enqueue(100);
    within(Duration::from_secs(20), || match count("succeeded") {
        100 => Ok(()),
        n => Err(n),
    });

    proxy.cut();
    // Still ready (enqueues are accepted), with a warning naming the relay.
    within(Duration::from_secs(15), || {
        let (status, body) = http("GET", port, "/health/ready", None);
        match body["warnings"].as_array() {
            Some(w) if status == 200 && !w.is_empty() => Ok(()),
            _ => Err((status, body)),
        }
    });
    enqueue(200);
    thread::sleep(Duration::from_secs(3));
    let (_, ready) = http("GET", port, "/health/ready", None);
    let warnings = ready["warnings"].to_string();
    assert!(
        warnings.contains("relay events") && warnings.contains("unreachable"),
        "{ready}"
    );
    assert_eq!(
        count("dead"),
        0,
        "nothing goes dead while the broker is away"
    );
    // The waiting jobs spent no attempt: they were left pending, or snoozed.
    let (_, waiting) = http(
        "GET",
        port,
        "/v1/jobs?queue=relay&state=pending&limit=200",
        None,
    );
    let spent: Vec<&Value> = waiting["jobs"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|j| j["attempt"] != 0)
        .collect();
    assert!(
        spent.is_empty(),
        "attempts spent while the broker was away: {spent:?}"
    );
    proxy.restore();
    within(Duration::from_secs(30), || match count("succeeded") {
        300 => Ok(()),
        n => Err((n, count("pending"), count("failed"))),
    });
    assert_eq!(count("dead"), 0);
    let (_, ready) = http("GET", port, "/health/ready", None);
    assert!(ready.get("warnings").is_none(), "{ready}");
    within(Duration::from_secs(10), || match delivered() {
        300 => Ok(()),
        n => Err(n),
    });
}

#[test]
fn a_jetstream_cut_mid_run_loses_nothing_and_the_flow_resumes() {
    let _machine = shared_machine();
    let rt = runtime();
    let Some(js) = rt.block_on(jetstream()) else {
        return;
    };
    let name = unique("FGC");
    rt.block_on(js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("fgc.{name}.>")],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    }))
    .expect("create the test stream");
    let upstream: std::net::SocketAddr = nats_url()
        .trim_start_matches("nats://")
        .parse()
        .expect("NATS_URL as nats://ip:port");
    let proxy = Proxy::start(upstream);
    let relay = format!(
        "[relays.events]\nurl = \"nats://127.0.0.1:{}\"\nkinds = [\"tick\"]\nsubject = \
         \"fgc.{name}.{{kind}}\"\nstream = \"{name}\"\nack_timeout = 1\nbreaker_wait = 0.5\n",
        proxy.port
    );
    // Exactly once: the stream's message count is the distinct jobs.
    let delivered = || {
        rt.block_on(async {
            let mut stream = js.get_stream(&name).await.expect("the stream");
            stream.info().await.expect("its info").state.messages as usize
        })
    };
    cut_mid_run(&proxy, &relay, &delivered);
    rt.block_on(js.delete_stream(&name))
        .expect("delete the test stream");
}

#[test]
fn a_rabbitmq_cut_mid_run_loses_nothing_and_the_flow_resumes() {
    use lapin::options::BasicConsumeOptions;
    use lapin::types::FieldTable;
    let _machine = shared_machine();
    let rt = runtime();
    let Some(connection) = rt.block_on(rabbit()) else {
        return;
    };
    let name = unique("fgc.");
    let ids = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    rt.block_on(async {
        let channel = exchange_and_queue(&connection, &name).await;
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = channel
            .basic_consume(
                name.clone().into(),
                "fgc".into(),
                no_ack,
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let ids = ids.clone();
        tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                if let Some(id) = delivery.properties.message_id() {
                    ids.lock().unwrap().insert(id.to_string());
                }
            }
        });
    });
    let upstream: std::net::SocketAddr = amqp_url()
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("AMQP_URL as amqp://user:password@ip:port/vhost")
        .parse()
        .expect("an ip:port");
    let proxy = Proxy::start(upstream);
    let relay = format!(
        "[relays.events]\nurl = \"amqp://guest:guest@127.0.0.1:{}/%2f\"\nkinds = [\"tick\"]\n\
         exchange = \"{name}\"\nack_timeout = 1\nbreaker_wait = 0.5\n",
        proxy.port
    );
    // At least once: the distinct job ids that arrived.
    let delivered = || ids.lock().unwrap().len();
    cut_mid_run(&proxy, &relay, &delivered);
    drop(connection);
}

/// Runs `floodgate serve` with `relay` settings and expects it to refuse to start: its
/// standard error.
fn refused(relay: &str) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), relay);
    let db = dir.path().join("jobs.db");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config", &config])
        .args(["--database-url", db.to_str().expect("a UTF-8 path")]);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLOODGATE_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start floodgate serve");
    let status = crate::support::process::wait_with_limit(&mut child, Duration::from_secs(30));
    let Some(status) = status else {
        let _ = child.kill();
        panic!("floodgate serve started with {relay}");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(!status.success(), "exit status {status}: {err}");
    err
}

#[test]
fn unusable_relay_settings_stop_the_server_at_start() {
    let _machine = shared_machine();
    let rt = runtime();
    let bad_url = refused("[relays.orders]\nurl = \"nats://:::nope\"\nkinds = [\"k\"]\n");
    assert!(bad_url.contains("relays.orders.url"), "{bad_url}");
    let scheme = refused("[relays.orders]\nurl = \"kafka://x:9092\"\nkinds = [\"k\"]\n");
    assert!(
        scheme.contains("relays.orders.url") && scheme.contains("amqp://"),
        "{scheme}"
    );
    if rt.block_on(jetstream()).is_some() {
        let stream = unique("NOSUCH");
        let missing = refused(&format!(
            "[relays.orders]\nurl = \"{}\"\nkinds = [\"k\"]\nstream = \"{stream}\"\n",
            nats_url()
        ));
        assert!(
            missing.contains("relays.orders.stream") && missing.contains("does not exist"),
            "{missing}"
        );
        // A stream whose duplicate window a crashed relay's lease outlasts.
        let js = rt.block_on(jetstream()).expect("NATS");
        let short = unique("FGW");
        rt.block_on(js.create_stream(async_nats::jetstream::stream::Config {
            name: short.clone(),
            subjects: vec![format!("fgw.{short}.>")],
            duplicate_window: Duration::from_secs(10),
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        }))
        .expect("create the test stream");
        let window = refused(&format!(
            "[relays.orders]\nurl = \"{}\"\nkinds = [\"k\"]\nstream = \"{short}\"\nsubject = \
             \"fgw.{short}.x\"\nlease_ttl = 30\n",
            nats_url()
        ));
        rt.block_on(js.delete_stream(&short))
            .expect("delete the test stream");
        assert!(
            window.contains("duplicate_window") && window.contains("relays.orders.lease_ttl"),
            "{window}"
        );
    }
    if rt.block_on(rabbit()).is_some() {
        let exchange = unique("nosuch.");
        let missing = refused(&format!(
            "[relays.orders]\nurl = \"{}\"\nkinds = [\"k\"]\nexchange = \"{exchange}\"\n",
            amqp_url()
        ));
        assert!(
            missing.contains("relays.orders.exchange") && missing.contains("does not exist"),
            "{missing}"
        );
        assert!(
            !missing.contains("guest:guest"),
            "the password is masked: {missing}"
        );
    }
}
