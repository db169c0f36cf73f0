//! [`ApiJson`]: the API's one JSON body extractor. Its rejection is the API's problem
//! document: `MALFORMED_JSON` (400) for a body that is not JSON or not sent as JSON,
//! `DUPLICATE_MEMBER` (400) for an object that names a member twice (parsers differ on which
//! one wins, so the body means different things to different parts of a user's stack),
//! `VALIDATION_FAILED` (422) for JSON of the wrong shape, `PAYLOAD_TOO_LARGE` (413) past
//! `max_body_bytes`. As JSON does not tell `5` from `5.0`, an integer setting written with a
//! zero fraction is taken (a payload, metadata or result is kept exactly as sent).
//!
//! ```
//! use floodgate_server::api::json::duplicate_member;
//!
//! assert_eq!(duplicate_member(br#"{"kind": "a", "payload": {}}"#), None);
//! assert_eq!(
//!     duplicate_member(br#"{"kind": "a", "payload": {"to": 1, "to": 2}}"#).as_deref(),
//!     Some("payload.to")
//! );
//! ```

use std::fmt;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::{ApiError, Code};

/// A JSON body of type `T`; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                Code::MalformedJson,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::from(JsonRejection::from(e)))?;
        parse(&bytes).map(ApiJson)
    }
}

/// A body as `T` (see the [module docs](self)).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value = read(bytes)?;
    // JSON does not tell `5` from `5.0`: a whole number written with a fraction is taken for
    // an integer setting (never inside a payload, metadata or result, kept as sent).
    whole_numbers(&mut value);
    from_value(value)
}

/// An optional JSON body (`Option<ApiJson<T>>`): none when the request sends no bytes, else
/// read as [`ApiJson`] reads it.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let json = is_json(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::from(JsonRejection::from(e)))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if !json {
            return Err(ApiError::new(
                Code::MalformedJson,
                "send the body as JSON with `Content-Type: application/json`, or no body",
            ));
        }
        parse(&bytes).map(|v| Some(ApiJson(v)))
    }
}

/// `value` as `T`, or a `VALIDATION_FAILED` naming the path of what does not fit.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::new(Code::ValidationFailed, detail)
    })
}

/// Reads a body in one pass: its value, or `DUPLICATE_MEMBER` naming the first member an
/// object names twice, or `MALFORMED_JSON`.
fn read(json: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut path = Vec::new();
    let read = (Walk { path: &mut path })
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match read {
        Ok(value) => Ok(value),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(ApiError::new(
            Code::DuplicateMember,
            format!(
                "the body names the member `{}` twice; send each member once",
                render(&path)
            ),
        )),
        Err(e) => Err(ApiError::new(
            Code::MalformedJson,
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// Members whose values are the user's own data, kept exactly as sent.
const USER_DATA: &[&str] = &["payload", "metadata", "result"];

/// Turns whole numbers written with a fraction (`5.0`) into integers in a request's own
/// fields and in those of the objects of its arrays (a batch's jobs), never inside a payload,
/// metadata or result; whether anything changed.
pub(crate) fn whole_numbers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    fn fields(object: &mut serde_json::Map<String, Value>, depth: u8) -> bool {
        let mut changed = false;
        for (key, value) in object.iter_mut() {
            if USER_DATA.contains(&key.as_str()) {
                continue;
            }
            match value {
                Value::Number(n) => {
                    if let Some(whole) = n.as_f64().filter(|f| n.is_f64() && is_whole(*f)) {
                        // Exact: `is_whole` bounds it within ±2^53.
                        *value = Value::from(whole as i64);
                        changed = true;
                    }
                }
                Value::Array(items) if depth == 0 => {
                    for item in items {
                        if let Value::Object(o) = item {
                            changed |= fields(o, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
        changed
    }
    match value {
        Value::Object(object) => fields(object, 0),
        _ => false,
    }
}

fn is_whole(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0
}

/// Whether the request says its body is JSON (`application/json`, or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The path (`payload.to`, `jobs[2].kind`) of the first member an object in `json` names
/// twice; `None` when there is none, or when `json` is not JSON at all.
pub fn duplicate_member(json: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut path = Vec::new();
    match (Walk { path: &mut path }).deserialize(&mut deserializer) {
        Err(e) if e.to_string().starts_with(DUPLICATE) => Some(render(&path)),
        _ => None,
    }
}

const DUPLICATE: &str = "duplicate member";

/// One step of a path into a document.
enum Step {
    Member(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Member(name) if out.is_empty() => out.push_str(name),
            Step::Member(name) => {
                out.push('.');
                out.push_str(name);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Walks a document, failing at the first repeated member, with `path` left pointing at it.
struct Walk<'p> {
    path: &'p mut Vec<Step>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A member's name.
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
                Ok(Key(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(Key(name)) = map.next_key::<Key>()? {
            let repeated = object.contains_key(&name);
            self.path.push(Step::Member(name));
            if repeated {
                return Err(de::Error::custom(DUPLICATE));
            }
            let value = map.next_value_seed(Walk { path: self.path })?;
            let Some(Step::Member(name)) = self.path.pop() else {
                unreachable!("the step pushed above")
            };
            object.insert(name, value);
        }
        Ok(serde_json::Value::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            self.path.push(Step::Index(items.len()));
            let item = seq.next_element_seed(Walk { path: self.path })?;
            self.path.pop();
            match item {
                Some(item) => items.push(item),
                None => return Ok(serde_json::Value::Array(items)),
            }
        }
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_members_are_found_with_their_path() {
        assert_eq!(duplicate_member(br#"{"a": 1, "b": [1, {"c": 2}]}"#), None);
        assert_eq!(
            duplicate_member(br#"{"kind": "a", "payload": {}, "kind": "b"}"#).as_deref(),
            Some("kind")
        );
        assert_eq!(
            duplicate_member(br#"{"jobs": [{"kind": "a"}, {"kind": "b", "kind": "c"}]}"#)
                .as_deref(),
            Some("jobs[1].kind")
        );
        // The same name in two objects is no repeat; an escaped name is the same name.
        assert_eq!(duplicate_member(br#"[{"a": 1}, {"a": 2}]"#), None);
        assert_eq!(
            duplicate_member(br#"{"a": 1, "\u0061": 2}"#).as_deref(),
            Some("a")
        );
        // Not JSON: left to the parser that reads it.
        assert_eq!(duplicate_member(b"{not json"), None);
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers_outside_user_data() {
        let mut v = serde_json::json!(
            {"limit": 91.0, "payload": {"x": 1.0}, "jobs": [{"priority": 5.0}]}
        );
        assert!(whole_numbers(&mut v));
        assert_eq!(v["limit"], 91);
        assert!(v["limit"].is_i64());
        assert!(v["payload"]["x"].is_f64(), "a payload is kept as sent");
        assert!(v["jobs"][0]["priority"].is_i64());
        assert!(!whole_numbers(&mut serde_json::json!({"limit": 91.5})));
        assert!(!whole_numbers(&mut serde_json::json!({"limit": 91})));
    }
}
