//! JSON-RPC 2.0 shaped messages: [`Request`], [`Notification`], [`Response`], [`HandlerError`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// JSON-RPC: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: the params are not what the method takes.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the handler failed internally (e.g. panicked or timed out).
pub const INTERNAL_ERROR: i64 = -32603;

/// A call that wants a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: Value,
    /// The handler to run.
    pub method: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Value,
}

/// A call without a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The handler to run.
    pub method: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Value,
}

/// A handler's error, sent as the JSON-RPC `error` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct HandlerError {
    /// A JSON-RPC error code (application codes outside -32768..=-32000).
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Anything else worth sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl HandlerError {
    /// An application error.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        HandlerError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32602`: the params are wrong; `message` says how.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        HandlerError::new(INVALID_PARAMS, message)
    }

    /// `-32603`: something broke inside.
    pub fn internal(message: impl Into<String>) -> Self {
        HandlerError::new(INTERNAL_ERROR, message)
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// The answer to a [`Request`]: its id and either a result or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id.
    pub id: Value,
    /// The value, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<HandlerError>,
}

impl Response {
    pub(crate) fn new(id: Value, outcome: Result<Value, HandlerError>) -> Self {
        let (result, error) = match outcome {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        Response {
            jsonrpc: "2.0".to_owned(),
            id,
            result,
            error,
        }
    }

    /// The result, or the error.
    pub fn into_result(self) -> Result<Value, HandlerError> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e),
            (Some(v), None) => Ok(v),
            (None, None) => Ok(Value::Null),
        }
    }
}
