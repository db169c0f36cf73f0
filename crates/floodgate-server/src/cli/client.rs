//! Client subcommands: one HTTP request each to a running server; a table (or `--json`) on
//! success, the problem's detail on stderr and exit status 1 on failure.

use std::process::ExitCode;

use comfy_table::Table;
use serde_json::{Value, json};

use super::{ClientArgs, Command};

pub(super) fn run(command: Command) -> ExitCode {
    super::run_to_exit(false, call(command))
}

/// What to request and how to show the answer.
enum Show {
    Job,
    Jobs,
    Queues,
    Accepted,
    Line,
}

async fn call(command: Command) -> Result<(), String> {
    // For one job, the key goes in the `Idempotency-Key` header.
    let mut key = None;
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
            let payload: Value = serde_json::from_str(&payload)
                .map_err(|e| format!("--payload is not JSON: {e}"))?;
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
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [("state", state), ("queue", queue), ("kind", kind)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", encode(&v)));
                }
            }
            let path = format!("/v1/jobs?{}", query.join("&"));
            (client, "GET", path, None, Show::Jobs)
        }
        Command::Retry { id, client } => (
            client,
            "POST",
            format!("/v1/jobs/{id}/retry"),
            None,
            Show::Line,
        ),
        Command::Cancel { id, client } => (
            client,
            "POST",
            format!("/v1/jobs/{id}/cancel"),
            None,
            Show::Line,
        ),
        Command::Queues { client } => (client, "GET", "/v1/queues".to_owned(), None, Show::Queues),
        Command::Pause { queue, client } => (
            client,
            "POST",
            format!("/v1/queues/{}/pause", encode(&queue)),
            None,
            Show::Line,
        ),
        Command::Resume { queue, client } => (
            client,
            "POST",
            format!("/v1/queues/{}/resume", encode(&queue)),
            None,
            Show::Line,
        ),
        Command::Serve(_) | Command::Config(_) | Command::Bench(_) | Command::Demo { .. } => {
            unreachable!("handled by the caller")
        }
    };
    let answer = request(&client, method, &path, body, key.as_deref()).await?;
    if client.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    match show {
        Show::Job => print_jobs(std::slice::from_ref(&answer)),
        Show::Jobs => print_jobs(answer["jobs"].as_array().map_or(&[], Vec::as_slice)),
        Show::Queues => print_queues(answer["queues"].as_array().map_or(&[], Vec::as_slice)),
        Show::Accepted => println!(
            "job {} {}{}",
            answer["id"],
            answer["state"].as_str().unwrap_or(""),
            if answer["duplicate"] == true {
                " (an earlier request with this idempotency key)"
            } else {
                ""
            }
        ),
        Show::Line => println!("{}", one_line(&answer)),
    }
    Ok(())
}

async fn request(
    client: &ClientArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Result<Value, String> {
    let url = format!("{}{path}", client.server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let mut req = match method {
        "POST" => http.post(&url),
        _ => http.get(&url),
    };
    if let Some(token) = &client.token {
        req = req.bearer_auth(token);
    }
    if let Some(key) = idempotency_key {
        req = req.header("idempotency-key", key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.map_err(|e| {
        format!(
            "cannot reach {}: {e} (is `floodgate serve` running there?)",
            client.server
        )
    })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(answer)
    } else {
        Err(format!(
            "{} {}: {}",
            status.as_u16(),
            answer["code"].as_str().unwrap_or("ERROR"),
            answer["detail"].as_str().unwrap_or("(no detail)")
        ))
    }
}

fn print_jobs(jobs: &[Value]) {
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
            j["id"].to_string(),
            text(&j["queue"]),
            text(&j["kind"]),
            text(&j["state"]),
            format!("{}/{}", j["attempt"], j["max_attempts"]),
            text(&j["run_at"]),
            text(&j["last_error"]),
        ]);
    }
    println!("{table}");
}

fn print_queues(queues: &[Value]) {
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
    for q in queues {
        let c = &q["counts"];
        table.add_row([
            text(&q["queue"]),
            q["paused"].to_string(),
            c["pending"].to_string(),
            c["running"].to_string(),
            c["succeeded"].to_string(),
            c["failed"].to_string(),
            c["dead"].to_string(),
            c["cancelled"].to_string(),
            q["oldest_pending_age_seconds"]
                .as_f64()
                .map_or_else(String::new, |s| format!("{s:.1}")),
        ]);
    }
    println!("{table}");
}

fn one_line(v: &Value) -> String {
    match (v.get("id"), v.get("state"), v.get("queue"), v.get("paused")) {
        (Some(id), Some(state), _, _) => format!("job {id} {}", text(state)),
        (_, _, Some(queue), Some(paused)) => {
            format!(
                "queue {} {}",
                text(queue),
                if paused == true { "paused" } else { "resumed" }
            )
        }
        _ => v.to_string(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query value or path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
