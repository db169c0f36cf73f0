//! Client subcommands: one HTTP request each to a running server; a table (or `--json`) on
//! success, the problem's detail on stderr and exit status 1 on failure. Answers are read into
//! the API's own model types, so the client and the server cannot disagree on a field.

use std::process::ExitCode;

use comfy_table::Table;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ClientArgs, Command};
use crate::api::model::{Accepted, JobList, JobView, QueueList, Reported};
use crate::api::queues::Paused;
use crate::error::Problem;

pub(super) fn run(command: Command) -> ExitCode {
    super::run_to_exit(false, call(command))
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    /// `--payload` is not JSON.
    #[error("--payload is not JSON: {0}")]
    Payload(serde_json::Error),
    /// The server could not be reached.
    #[error("cannot reach {server}: {source} (is `floodgate serve` running there?)")]
    Unreachable {
        server: String,
        source: reqwest::Error,
    },
    /// The server answered with a problem document.
    #[error("{status} {code}: {detail}")]
    Problem {
        status: u16,
        code: String,
        detail: String,
    },
    /// The answer is not what this client expects (another version of the server?).
    #[error("the server's answer to {path} is not what this client expects: {why}")]
    Answer { path: String, why: String },
}

/// What to request and how to show the answer.
enum Show {
    Job,
    Jobs,
    Queues,
    Accepted,
    Reported,
    Paused,
}

async fn call(command: Command) -> Result<(), ClientError> {
    // For one job, the key goes in the `Idempotency-Key` header.
    let mut key = None;
    let mut query: Vec<(&str, String)> = Vec::new();
    let (client, method, path, body, show) = match command {
        Command::Enqueue {
            kind,
            payload,
            queue,
            priority,
            run_at,
            idempotency_key,
            client,
        } => {
            let payload: Value = serde_json::from_str(&payload).map_err(ClientError::Payload)?;
            let mut body = json!({ "kind": kind, "payload": payload });
            for (field, value) in [
                ("queue", queue.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("run_at", run_at.map(Value::from)),
            ] {
                if let Some(v) = value {
                    body[field] = v;
                }
            }
            key = idempotency_key;
            (
                client,
                "POST",
                "/v1/jobs".to_owned(),
                Some(body),
                Show::Accepted,
            )
        }
        Command::Status { id, client } => {
            (client, "GET", format!("/v1/jobs/{id}"), None, Show::Job)
        }
        Command::Jobs {
            state,
            queue,
            kind,
            limit,
            client,
        } => {
            query.push(("limit", limit.to_string()));
            for (k, v) in [("state", state), ("queue", queue), ("kind", kind)] {
                if let Some(v) = v {
                    query.push((k, v));
                }
            }
            (client, "GET", "/v1/jobs".to_owned(), None, Show::Jobs)
        }
        Command::Retry { id, client } => (
            client,
            "POST",
            format!("/v1/jobs/{id}/retry"),
            None,
            Show::Reported,
        ),
        Command::Cancel { id, client } => (
            client,
            "POST",
            format!("/v1/jobs/{id}/cancel"),
            None,
            Show::Reported,
        ),
        Command::Queues { client } => (client, "GET", "/v1/queues".to_owned(), None, Show::Queues),
        Command::Pause { queue, client } => (
            client,
            "POST",
            format!("/v1/queues/{}/pause", segment(&queue)),
            None,
            Show::Paused,
        ),
        Command::Resume { queue, client } => (
            client,
            "POST",
            format!("/v1/queues/{}/resume", segment(&queue)),
            None,
            Show::Paused,
        ),
        Command::Serve(_) | Command::Config(_) | Command::Bench(_) | Command::Demo { .. } => {
            unreachable!("handled by the caller")
        }
    };
    let call = Call {
        client: &client,
        method,
        path: &path,
        query: &query,
        body,
        idempotency_key: key.as_deref(),
    };
    let answer: Value = call.send().await?;
    if client.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    match show {
        Show::Job => print_jobs(&[read::<JobView>(&path, answer)?]),
        Show::Jobs => print_jobs(&read::<JobList>(&path, answer)?.jobs),
        Show::Queues => print_queues(&read::<QueueList>(&path, answer)?),
        Show::Accepted => {
            let a: Accepted = read(&path, answer)?;
            let again = if a.duplicate {
                " (an earlier request with this idempotency key)"
            } else {
                ""
            };
            println!("job {} {}{again}", a.id, state_name(&a.state));
        }
        Show::Reported => {
            let r: Reported = read(&path, answer)?;
            println!("job {} {}", r.id, state_name(&r.state));
        }
        Show::Paused => {
            let p: Paused = read(&path, answer)?;
            let now = if p.paused { "paused" } else { "resumed" };
            println!("queue {} {now}", p.queue);
        }
    }
    Ok(())
}

/// One request to the server.
struct Call<'a> {
    client: &'a ClientArgs,
    method: &'static str,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<Value>,
    idempotency_key: Option<&'a str>,
}

impl Call<'_> {
    /// The answer's JSON, or the problem the server answered with.
    async fn send(self) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.client.server.trim_end_matches('/'), self.path);
        let http = reqwest::Client::new();
        let mut req = match self.method {
            "POST" => http.post(&url),
            _ => http.get(&url),
        };
        if !self.query.is_empty() {
            req = req.query(self.query);
        }
        if let Some(token) = &self.client.token {
            req = req.bearer_auth(token);
        }
        if let Some(key) = self.idempotency_key {
            req = req.header("idempotency-key", key);
        }
        if let Some(body) = self.body {
            req = req.json(&body);
        }
        let response = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.client.server.clone(),
                source,
            })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let problem: Option<Problem> = serde_json::from_value(answer).ok();
        Err(ClientError::Problem {
            status: status.as_u16(),
            code: problem
                .as_ref()
                .map_or("ERROR".to_owned(), |p| state_name(&p.code)),
            detail: problem.map_or("(no detail)".to_owned(), |p| p.detail),
        })
    }
}

/// `answer` as the model type `T`.
fn read<T: DeserializeOwned>(path: &str, answer: Value) -> Result<T, ClientError> {
    serde_json::from_value(answer).map_err(|e| ClientError::Answer {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// A value's name as the API writes it (`"pending"`, `"LEASE_LOST"`).
fn state_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        other => other.map(|v| v.to_string()).unwrap_or_default(),
    }
}

fn print_jobs(jobs: &[JobView]) {
    let mut table = Table::new();
    table.set_header([
        "id",
        "queue",
        "kind",
        "state",
        "attempt",
        "run at",
        "last error",
    ]);
    for j in jobs {
        table.add_row([
            j.id.to_string(),
            j.queue.clone(),
            j.kind.clone(),
            state_name(&j.state),
            format!("{}/{}", j.attempt, j.max_attempts),
            j.run_at.to_rfc3339(),
            j.last_error.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
}

fn print_queues(list: &QueueList) {
    let mut table = Table::new();
    table.set_header([
        "queue",
        "paused",
        "pending",
        "running",
        "succeeded",
        "failed",
        "dead",
        "cancelled",
        "oldest (s)",
    ]);
    for q in &list.queues {
        let c = &q.counts;
        table.add_row([
            q.queue.clone(),
            q.paused.to_string(),
            c.pending.to_string(),
            c.running.to_string(),
            c.succeeded.to_string(),
            c.failed.to_string(),
            c.dead.to_string(),
            c.cancelled.to_string(),
            q.oldest_pending_age_seconds
                .map_or_else(String::new, |s| format!("{s:.1}")),
        ]);
    }
    println!("{table}");
}

/// A path segment (a queue's name), percent-encoded.
fn segment(name: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base");
    url.path_segments_mut()
        .expect("a base with a path")
        .push(name);
    url.path().trim_start_matches('/').to_owned()
}
