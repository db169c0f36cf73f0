//! Test support: an app over an in-memory SQLite store, and one-call requests through
//! `oneshot` (no socket).
#![allow(dead_code, unreachable_pub)]

pub mod process;
pub mod proxy;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use floodgate_server::app;
use floodgate_server::config::Config;
use floodgate_server::state::AppState;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An app over a fresh in-memory store with `config`.
pub async fn app_with(config: Config) -> (Router, AppState) {
    // The server checks payloads against its own limit before the store sees them.
    let store = floodgate_queue::SqliteStore::in_memory()
        .await
        .expect("an in-memory store");
    let state = AppState::new(store.into(), config);
    (app(state.clone()), state)
}

/// Polls `check` every 20 ms until it gives a value, and returns it; past `limit`, fails the
/// test with `what` and the last thing `check` saw. The one way these tests wait for
/// something to happen: on an event, with a deadline, never a fixed sleep.
pub async fn eventually<T, S, F, Fut>(what: &str, limit: std::time::Duration, mut check: F) -> T
where
    S: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, S>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// An app with default settings.
pub async fn test_app() -> (Router, AppState) {
    app_with(Config::default()).await
}

/// An answer: status, headers, and the body as JSON (`Null` when empty, a string when not
/// JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem's `code`, checking that the answer is a problem document.
    pub fn code(&self) -> &str {
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "not a problem document: {:?}",
            self.body
        );
        self.body["code"].as_str().expect("a code")
    }
}

/// Sends one request with a JSON body (if any) and extra headers.
pub async fn send(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    raw(app, request.body(body).unwrap()).await
}

/// Sends a prepared request.
pub async fn raw(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    if headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
    {
        // An endless stream: the status and headers are the answer (see `events`).
        return Answer {
            status,
            headers,
            body: Value::Null,
        };
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// POST with a JSON body.
pub async fn post(app: &Router, path: &str, body: Value) -> Answer {
    send(app, Method::POST, path, Some(body), &[]).await
}

/// GET.
pub async fn get(app: &Router, path: &str) -> Answer {
    send(app, Method::GET, path, None, &[]).await
}

/// Enqueues `{"kind": kind, "payload": payload}` and returns its id.
pub async fn enqueue(app: &Router, kind: &str, payload: Value) -> i64 {
    let a = post(
        app,
        "/v1/jobs",
        serde_json::json!({ "kind": kind, "payload": payload }),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    a.body["id"].as_i64().unwrap()
}

/// Claims up to `limit` jobs from `default` as worker `w`.
pub async fn claim(app: &Router, limit: u32) -> Vec<Value> {
    let a = post(
        app,
        "/v1/queues/default/claim",
        serde_json::json!({ "worker": "w", "limit": limit }),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["jobs"].as_array().unwrap().clone()
}

/// Opens a Server-Sent Events stream; its `event: overview` payloads, one per call of
/// [`Events::next`].
pub async fn events(app: &Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Events) {
    let mut request = Request::builder().uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    (
        response.status(),
        Events {
            body: response.into_body(),
            buffer: String::new(),
        },
    )
}

/// An open event stream.
pub struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    /// The next event's data as JSON; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(serde_json::from_str(&data).expect("an event's data is JSON"));
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
