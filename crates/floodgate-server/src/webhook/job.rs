//! A `webhook` job: in the `webhooks` queue unless it names another, and in its destination's
//! group (`metadata.group`), so claims can leave the jobs of a destination that must wait
//! (open breaker, disabled, at its limit) where they are.

use floodgate_queue::NewJob;
use serde_json::Value;

use super::request::{InvalidWebhook, KIND, WebhookRequest};

/// The queue `webhook` jobs go to unless they name another.
pub const QUEUE: &str = "webhooks";

/// A `webhook` job with `payload` (checked), in the `webhooks` queue and its destination's
/// group: how the server enqueues one, and how a Rust producer using the queue directly (in
/// an outbox transaction, say) should build one.
///
/// ```
/// use floodgate_server::webhook::job::new_job;
///
/// let job = new_job(serde_json::json!({"url": "https://hooks.example.com/x", "body": {}}))?;
/// assert_eq!(job.queue_name(), "webhooks");
/// # Ok::<(), floodgate_server::webhook::request::InvalidWebhook>(())
/// ```
pub fn new_job(payload: Value) -> Result<NewJob, InvalidWebhook> {
    let group = WebhookRequest::parse(&payload)?.destination();
    Ok(NewJob::new(KIND, payload).queue(QUEUE).group(group))
}
