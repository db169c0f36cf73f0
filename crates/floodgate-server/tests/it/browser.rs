//! The dashboard in a real browser: headless Chromium driven through Debian's chromedriver
//! (WebDriver, with `fantoccini`). It opens the page on a server with tokens, enqueues jobs
//! through the store and sees the counts change without a reload (and stop while the tab is
//! hidden, then catch up when it is shown), makes a job dead and
//! retries it from the page (confirming the dialog) and sees it run, and checks that a
//! read-only session has no action buttons. Screenshots of the overview and the failures view
//! go to `target/dashboard/`.
//!
//! Skips when chromedriver is missing, unless `FLOODGATE_REQUIRE_SERVICES=1` (then fails).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use floodgate_queue::worker::{JobError, KindOptions, Outcome, Worker};
use floodgate_queue::{Claim, JobId, JobState, NewJob, Store};
use floodgate_server::config::Config;
use floodgate_server::state::AppState;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    floodgate_testing::services_required()
}

/// Starts chromedriver, or says why not.
fn start_driver() -> Result<Driver, String> {
    let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or(
            "chromedriver is not installed (Debian: apt-get install chromium chromium-driver)",
        )?;
    let port = crate::support::process::free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{binary} did not listen on {port} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(driver)
}

async fn browser(driver: &Driver) -> Result<Client, String> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .map_err(|e| format!("Chromium did not start: {e}"))
}

/// Waits (up to 15 s) until `script` (a JS expression) returns something `ok` accepts.
async fn until(client: &Client, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = client
            .execute(&format!("return ({script});"), vec![])
            .await
            .unwrap_or(Value::Null);
        if ok(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, as a JS expression.
fn text_of(css: &str) -> String {
    format!("(document.querySelector({css:?}) || {{}}).textContent || null")
}

async fn open_as(client: &Client, base: &str, token: &str) {
    client.goto(base).await.unwrap();
    client
        .execute(
            "sessionStorage.setItem('floodgate.token', arguments[0]);",
            vec![json!(token)],
        )
        .await
        .unwrap();
    client.goto(&format!("{base}#/overview")).await.unwrap();
    client.refresh().await.unwrap();
    until(client, "the live indicator", &text_of("#live"), |v| {
        v == "live"
    })
    .await;
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_headless_chromium() {
    let driver = match start_driver() {
        Ok(d) => d,
        Err(why) if required() => panic!("{why}"),
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let client = match browser(&driver).await {
        Ok(c) => c,
        Err(why) if required() => panic!("{why}"),
        Err(why) => return eprintln!("skipped: {why}"),
    };

    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(Config {
        database_url: dir.path().join("dash.db").to_string_lossy().into_owned(),
        api_token: Some(ADMIN.into()),
        read_only_token: Some(READER.into()),
        queue_stats_max_age: Duration::ZERO,
        ..Config::default()
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let app = floodgate_server::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let store = state.store().clone();

    // Counts change on the page without a reload.
    open_as(&client, &base, ADMIN).await;
    for n in 0..5 {
        store
            .enqueue(NewJob::new("email", json!({ "n": n })))
            .await
            .unwrap();
    }
    let pending = text_of(r#"#queues tr[data-queue="default"] td[data-state="pending"]"#);
    until(&client, "five pending jobs on the page", &pending, |v| {
        v == "5"
    })
    .await;
    let actions: u64 = client
        .execute(
            "return document.querySelectorAll('[data-action]').length;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(actions > 0, "an admin session has action buttons");
    std::fs::write(
        screenshot_dir().join("overview.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // A hidden tab stops the stream; shown again, it catches up without a reload.
    let visibility = |hidden: bool| {
        format!(
            "Object.defineProperty(document, 'hidden', {{configurable: true, get: () => {hidden}}}); \
             document.dispatchEvent(new Event('visibilitychange'));"
        )
    };
    client.execute(&visibility(true), vec![]).await.unwrap();
    until(&client, "paused while hidden", &text_of("#live"), |v| {
        v == "paused"
    })
    .await;
    store
        .enqueue(NewJob::new("email", json!({ "n": 5 })))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = client
        .execute(&format!("return {};", pending), vec![])
        .await
        .unwrap();
    assert_eq!(still, json!("5"), "no updates while hidden");
    client.execute(&visibility(false), vec![]).await.unwrap();
    until(&client, "six pending after the catch-up", &pending, |v| {
        v == "6"
    })
    .await;
    until(&client, "live again", &text_of("#live"), |v| v == "live").await;

    // A job goes dead; the failures view groups it.
    let dead = store
        .enqueue(NewJob::new("payment", json!({"order": 7})).max_attempts(1))
        .await
        .unwrap()
        .id;
    let claimed = store
        .claim(&Claim::new("w", 10).kinds(["payment"]))
        .await
        .unwrap();
    store
        .dead(claimed[0].lease().unwrap(), "connection refused")
        .await
        .unwrap();
    client.goto(&format!("{base}#/failures")).await.unwrap();
    let group = text_of(r#"#failures tr[data-error-group] td[data-field="error"]"#);
    until(&client, "the failure group", &group, |v| {
        v == "connection refused"
    })
    .await;
    std::fs::write(
        screenshot_dir().join("failures.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // Retry every dead job of the filter, confirming the dialog, and see the job run.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let worker = Worker::builder(store.clone())
        .poll_interval(Duration::from_millis(50))
        .handler("payment", KindOptions::new(), move |_, _| {
            let flag = flag.clone();
            async move {
                flag.store(true, Ordering::SeqCst);
                Ok::<_, JobError>(Outcome::done())
            }
        })
        .build()
        .unwrap()
        .start();
    client
        .goto(&format!("{base}#/jobs?state=dead&kind=payment"))
        .await
        .unwrap();
    let row = format!(
        r#"#jobs tr[data-job-id="{}"] td[data-field="state"]"#,
        dead.0
    );
    until(&client, "the dead job listed", &text_of(&row), |v| {
        v == "dead"
    })
    .await;
    client
        .find(Locator::Css(r#"button[data-action="retry-filter"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let question = wait_alert(&client).await;
    assert!(
        question.starts_with("Retry 1 ")
            && question.contains(" job ")
            && question.ends_with("matching this filter?"),
        "the dialog states the count: {question}"
    );
    client.accept_alert().await.unwrap();
    let job = eventually(&store, dead, JobState::Succeeded).await;
    assert_eq!(job.attempt, 1, "a fresh set of attempts");
    assert!(ran.load(Ordering::SeqCst));
    client
        .goto(&format!("{base}#/jobs/{}", dead.0))
        .await
        .unwrap();
    let shown = text_of(r#"dd[data-field="state"]"#);
    until(&client, "the job shown succeeded", &shown, |v| {
        v == "succeeded"
    })
    .await;

    // A read-only session: no action buttons, on the overview or the jobs view.
    open_as(&client, &base, READER).await;
    until(&client, "counts as reader", &pending, |v| v.is_string()).await;
    client.goto(&format!("{base}#/jobs")).await.unwrap();
    until(
        &client,
        "jobs as reader",
        &text_of("#jobs tr[data-job-id]"),
        |v| v.is_string(),
    )
    .await;
    let count = client
        .execute(
            "return [document.querySelectorAll('[data-action]').length, \
             document.body.classList.contains('read-only')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        count,
        json!([0, true]),
        "a read-only session has no action buttons"
    );

    worker.shutdown(Duration::from_secs(5)).await;
    client.close().await.unwrap();
}

async fn wait_alert(client: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = client.get_alert_text().await {
            return text;
        }
        assert!(Instant::now() < deadline, "no confirmation dialog");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn eventually(
    store: &floodgate_queue::AnyStore,
    id: JobId,
    state: JobState,
) -> floodgate_queue::Job {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id:?} is {:?}", job.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
