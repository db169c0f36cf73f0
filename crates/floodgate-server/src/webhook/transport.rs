//! Webhooks as a delivery transport: a `webhook` job's payload is an HTTP request
//! ([`WebhookRequest`]), its destination the payload's `destination` or the URL's host, its
//! endpoint an HTTP client whose resolver only hands out addresses the destination's
//! [`AddressPolicy`](super::ssrf::AddressPolicy) allows. One attempt is one request, signed
//! with Standard Webhooks headers (`webhook-id` is the job id, stable across attempts, so
//! receivers can drop repeats), whose answer is read up to `max_response_bytes` and no further
//! and classified (`classify`).

use std::time::{Duration, Instant};

use chrono::Utc;
use floodgate_queue::Job;
use serde_json::{Map, Value, json};

use super::classify::classify_status;
use super::config::{Resolved, WebhookConfig};
use super::job::QUEUE;
use super::request::{KIND, WebhookRequest};
use super::signature;
use super::ssrf::{self, Refused};
use crate::delivery::Verdict;
use crate::delivery::transport::{InvalidPayload, OpenError, Policy, Sent, Transport};

/// What one attempt did, kept on the job (as its result, or in its last error).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// How long the request took.
    pub duration: Duration,
    /// The start of the answer's body (`max_response_bytes`, 4 KiB by default).
    pub body: String,
    /// Why the body kept is not the whole answer (longer than kept, cut off at the timeout,
    /// broken off), if it is not.
    pub body_error: Option<String>,
}

/// Webhook delivery over HTTP; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct WebhookTransport {
    config: WebhookConfig,
}

impl WebhookTransport {
    /// The transport with `config` (validated).
    pub fn new(config: WebhookConfig) -> WebhookTransport {
        WebhookTransport { config }
    }

    /// Its settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }
}

/// A destination's settings and HTTP client.
#[derive(Debug)]
pub struct Endpoint {
    settings: Resolved,
    client: reqwest::Client,
}

impl Transport for WebhookTransport {
    type Message = WebhookRequest;
    type Endpoint = Endpoint;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn queue(&self) -> &'static str {
        QUEUE
    }

    fn parse(&self, payload: &Value) -> Result<WebhookRequest, InvalidPayload> {
        WebhookRequest::parse(payload).map_err(|e| InvalidPayload(e.to_string()))
    }

    fn destination(&self, message: &WebhookRequest) -> String {
        message.destination()
    }

    fn open(&self, destination: &str) -> Result<(Policy, Endpoint), OpenError> {
        let refuse = |reason: String| OpenError {
            destination: destination.to_owned(),
            reason,
        };
        let settings = self
            .config
            .resolve(destination)
            .map_err(|e| refuse(e.to_string()))?;
        let client = ssrf::client(
            settings.policy.clone(),
            settings.connect_timeout,
            settings.timeout,
        )
        .map_err(|e| refuse(format!("cannot build the HTTP client: {e}")))?;
        let policy = Policy {
            max_concurrency: settings.max_concurrency,
            initial_concurrency: None,
            rate_per_second: settings.rate_per_second,
            schedule: settings.schedule.clone(),
            timeout: settings.timeout,
        };
        Ok((policy, Endpoint { settings, client }))
    }

    fn refuse(&self, endpoint: &Endpoint, request: &WebhookRequest) -> Option<String> {
        let checked = endpoint.settings.policy.check_url(&request.url);
        checked.err().map(|refused| refused.to_string())
    }

    async fn send(&self, endpoint: &Endpoint, request: &WebhookRequest, job: &Job) -> Sent {
        let (attempt, verdict, error) = self.request(endpoint, request, job).await;
        let mut record = attempt_json(&attempt);
        let describe = match (&error, attempt.status) {
            (Some(e), _) => format!("{e} (after {:?})", attempt.duration),
            (None, Some(s)) => format!("HTTP {s}: {} (after {:?})", attempt.body, attempt.duration),
            (None, None) => "no answer".to_owned(),
        };
        let describe = if verdict == Verdict::Gone {
            format!("410 Gone from {}: {describe}", request.url)
        } else {
            describe
        };
        if verdict != Verdict::Delivered {
            record.insert(
                "error".to_owned(),
                json!(error.clone().or_else(|| attempt.body_error.clone())),
            );
        }
        Sent {
            verdict,
            record,
            error: (verdict != Verdict::Delivered).then_some(describe),
        }
    }
}

impl WebhookTransport {
    /// One request: the attempt, the verdict, and a transport error, if any.
    async fn request(
        &self,
        dest: &Endpoint,
        request: &WebhookRequest,
        job: &Job,
    ) -> (Attempt, Verdict, Option<String>) {
        let body = match &request.body {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut builder = dest
            .client
            .request(method, request.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        let id = format!("job_{}", job.id);
        if !dest.settings.secrets.is_empty()
            && let Ok(headers) =
                signature::headers(&dest.settings.secrets, &id, Utc::now().timestamp(), &body)
        {
            for (k, v) in headers {
                builder = builder.header(k, v);
            }
        } else {
            builder = builder.header(signature::WEBHOOK_ID, id.as_str());
        }
        let started = Instant::now();
        match builder.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let deadline = tokio::time::Instant::from_std(started) + dest.settings.timeout;
                let (body, body_error) =
                    read_capped(response, self.config.max_response_bytes, deadline).await;
                let attempt = Attempt {
                    status: Some(status),
                    duration: started.elapsed(),
                    body,
                    body_error,
                };
                let max = Duration::from_secs_f64(self.config.max_retry_after);
                (
                    attempt,
                    classify_status(status, retry_after.as_deref(), max),
                    None,
                )
            }
            Err(e) => {
                let attempt = Attempt {
                    status: None,
                    duration: started.elapsed(),
                    body: String::new(),
                    body_error: None,
                };
                match Refused::find_in(&e) {
                    Some(refused) => (attempt, Verdict::Permanent, Some(refused.to_string())),
                    None => {
                        let what = if e.is_timeout() {
                            "timed out"
                        } else {
                            "failed"
                        };
                        (
                            attempt,
                            Verdict::Retry,
                            Some(format!("request {what}: {e}")),
                        )
                    }
                }
            }
        }
    }
}

fn attempt_json(a: &Attempt) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("status".to_owned(), json!(a.status));
    record.insert(
        "duration_ms".to_owned(),
        json!(u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX)),
    );
    record.insert("body".to_owned(), json!(a.body));
    if let Some(e) = &a.body_error {
        record.insert("body_error".to_owned(), json!(e));
    }
    record
}

/// Reads at most `cap` bytes of an answer's body, until `deadline`, and drops the rest unread
/// (the connection closes with the response): a receiver's answer never grows memory beyond
/// the cap and one chunk, and a body that drips is cut off at the request's timeout. The kept
/// bytes (as text, cut at a character boundary) and why they are not the whole body, if not.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    deadline: tokio::time::Instant,
) -> (String, Option<String>) {
    let mut kept: Vec<u8> = Vec::with_capacity(cap.min(4096));
    let error = loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = cap - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    break Some(format!(
                        "the answer's body is longer than {cap} bytes: the first {} are kept, \
                         the rest was not read",
                        kept.len()
                    ));
                }
            }
            Ok(Ok(None)) => break None,
            // (The client's own deadline for the whole request, the same one as below.)
            Ok(Err(e)) if e.is_timeout() => {
                break Some(format!(
                    "the answer's body did not end within the request's timeout: {} bytes \
                     kept",
                    kept.len()
                ));
            }
            Ok(Err(e)) => {
                break Some(format!(
                    "the answer's body broke off after {} bytes: {e}",
                    kept.len()
                ));
            }
            Err(_) => {
                break Some(format!(
                    "the answer's body did not end within the request's timeout: {} bytes \
                     kept",
                    kept.len()
                ));
            }
        }
    };
    (text_of(kept), error)
}

/// `bytes` as text: invalid UTF-8 replaced, a character cut at the end dropped.
fn text_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            match std::str::from_utf8(&bytes[valid..]) {
                // Only an incomplete character at the end: the cut.
                Err(tail) if tail.error_len().is_none() => {
                    String::from_utf8_lossy(&bytes[..valid]).into_owned()
                }
                _ => String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
    }
}
