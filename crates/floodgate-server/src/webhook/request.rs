//! The payload of a job of the built-in kind `webhook`, checked when it is enqueued: a bad URL,
//! method or header is a `422` then, not a failed job later.
//!
//! ```
//! use floodgate_server::webhook::request::WebhookRequest;
//! use serde_json::json;
//!
//! let ok = WebhookRequest::parse(&json!({
//!     "url": "https://hooks.example.com/orders",
//!     "body": {"order": 42, "event": "placed"},
//! }))?;
//! assert_eq!(ok.method(), "POST");
//! assert_eq!(ok.url.host_str(), Some("hooks.example.com"));
//!
//! let bad = WebhookRequest::parse(&json!({"url": "ftp://example.com/x", "body": {}}));
//! assert!(bad.unwrap_err().to_string().contains("http"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The job kind the server delivers itself.
pub const KIND: &str = "webhook";

/// Headers a payload may not set: the transport's and the signature's own.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The payload of a `webhook` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to deliver (`http` or `https`).
    pub url: Url,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: sent as JSON (a JSON string is sent as that string's JSON text).
    pub body: Value,
    /// A configured destination's name; by default the URL's host picks the destination.
    #[serde(default)]
    pub destination: Option<String>,
}

/// Why a `webhook` payload cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhook {
    /// The payload does not have the shape of a webhook.
    #[error("a webhook payload is {{url, method?, headers?, body, destination?}}: {0}")]
    Shape(String),
    /// The URL's scheme is not http or https.
    #[error("url: {0:?} is not an http or https URL")]
    Scheme(String),
    /// The URL has no host, or carries credentials.
    #[error("url: {0}")]
    Url(String),
    /// The method is not one a webhook is sent with.
    #[error("method: {0:?} is not POST, PUT or PATCH")]
    Method(String),
    /// A header name or value is malformed, or reserved.
    #[error("headers: {0}")]
    Header(String),
}

impl WebhookRequest {
    /// Parses and checks a job's payload.
    pub fn parse(payload: &Value) -> Result<WebhookRequest, InvalidWebhook> {
        let request: WebhookRequest = serde_json::from_value(payload.clone())
            .map_err(|e| InvalidWebhook::Shape(e.to_string()))?;
        request.check()?;
        Ok(request)
    }

    /// The method, upper-cased (`POST` by default).
    pub fn method(&self) -> String {
        self.method
            .as_deref()
            .unwrap_or("POST")
            .to_ascii_uppercase()
    }

    fn check(&self) -> Result<(), InvalidWebhook> {
        if !matches!(self.url.scheme(), "http" | "https") {
            return Err(InvalidWebhook::Scheme(self.url.scheme().to_owned()));
        }
        if self.url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidWebhook::Url("a host is required".to_owned()));
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            return Err(InvalidWebhook::Url(
                "credentials in the URL are not allowed; send them in a header".to_owned(),
            ));
        }
        let method = self.method();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            return Err(InvalidWebhook::Method(method));
        }
        for (name, value) in &self.headers {
            let parsed = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| InvalidWebhook::Header(format!("{name:?} is not a header name")))?;
            if RESERVED.contains(&parsed.as_str()) {
                return Err(InvalidWebhook::Header(format!(
                    "{name:?} is set by the server and cannot be given"
                )));
            }
            reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                InvalidWebhook::Header(format!("the value of {name:?} is not a header value"))
            })?;
        }
        Ok(())
    }

    /// The destination's name: the configured one, or the URL's host.
    pub fn destination(&self) -> String {
        self.destination
            .clone()
            .unwrap_or_else(|| self.url.host_str().unwrap_or_default().to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        for (payload, says) in [
            (json!({"body": {}}), "url"),
            (json!({"url": "not a url", "body": {}}), "url"),
            (json!({"url": "file:///etc/passwd", "body": {}}), "http"),
            (
                json!({"url": "https://u:p@example.com/", "body": {}}),
                "credentials",
            ),
            (
                json!({"url": "https://example.com/", "method": "GET", "body": {}}),
                "POST",
            ),
            (
                json!({"url": "https://example.com/", "body": {}, "headers": {"bad name": "x"}}),
                "header name",
            ),
            (
                json!({"url": "https://example.com/", "body": {}, "headers": {"webhook-id": "x"}}),
                "set by the server",
            ),
            (
                json!({"url": "https://example.com/", "body": {}, "extra": 1}),
                "extra",
            ),
        ] {
            let err = WebhookRequest::parse(&payload).unwrap_err().to_string();
            assert!(err.contains(says), "{payload}: {err}");
        }
    }

    #[test]
    fn the_destination_is_the_named_one_or_the_host() {
        let r = WebhookRequest::parse(&json!({"url": "https://Hooks.Example.com/x", "body": 1}))
            .unwrap();
        assert_eq!(r.destination(), "hooks.example.com");
        let named = WebhookRequest::parse(
            &json!({"url": "https://h.example.com/x", "body": 1, "destination": "billing"}),
        )
        .unwrap();
        assert_eq!(named.destination(), "billing");
        assert_eq!(named.method(), "POST");
    }
}
