//! Checks on the JSON a job carries (payloads, results, metadata), made before anything is
//! written, so that what is stored can always be read back by every backend. A room of its
//! own below both the job model and the stores, which both use it.
//!
//! * **Depth.** Readers decode with `serde_json`, which refuses documents nested deeper than
//!   its recursion limit. A value built in memory (`json!`, `Value::Array`) has no such limit,
//!   so without this check a deep payload is stored and then breaks every read of the row.
//!   [`MAX_JSON_DEPTH`] is exactly what the readers accept (a test holds the two together).
//! * **NUL characters.** PostgreSQL's `jsonb` cannot store `\u0000` in a string; SQLite can. A
//!   job refused by one backend is refused by both.

use serde_json::Value;

use crate::error::StoreError;

/// The largest payload a store accepts unless its builder says otherwise: 1 MiB of JSON.
/// Queues move references to data, not the data: large blobs belong in object storage.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The deepest nesting of arrays and objects a stored JSON value may have: the most that
/// `serde_json` (and so every reader of the store) decodes.
pub const MAX_JSON_DEPTH: usize = 127;

/// Checks depth and NUL characters of `value`, the `field` of a job; the error says which
/// rule was broken and what to do. Walks the value without recursion (no stack overflow on
/// hostile input).
pub(crate) fn validate(field: &'static str, value: &Value) -> Result<(), StoreError> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                too_deep(field, depth + 1)?;
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Object(map) => {
                too_deep(field, depth + 1)?;
                for (k, v) in map {
                    nul(field, k)?;
                    stack.push((v, depth + 1));
                }
            }
            Value::String(s) => nul(field, s)?,
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(())
}

/// Refuses a payload whose JSON text is longer than `limit` bytes. Serialises into a counter
/// that stops just past the limit, so a huge payload costs no more than the limit to refuse.
pub(crate) fn check_size(payload: &Value, limit: usize) -> Result<(), StoreError> {
    struct Counter {
        n: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, limit };
    match serde_json::to_writer(&mut counter, payload) {
        Ok(()) => Ok(()),
        Err(_) if counter.n > limit => Err(StoreError::PayloadTooLarge {
            size: counter.n,
            limit,
        }),
        Err(e) => Err(e.into()),
    }
}

fn too_deep(field: &'static str, depth: usize) -> Result<(), StoreError> {
    if depth > MAX_JSON_DEPTH {
        return Err(StoreError::invalid(
            field,
            format!(
                "is nested more than {MAX_JSON_DEPTH} arrays/objects deep, which cannot be read \
                 back; flatten it"
            ),
        ));
    }
    Ok(())
}

fn nul(field: &'static str, s: &str) -> Result<(), StoreError> {
    if s.contains('\0') {
        return Err(StoreError::invalid(
            field,
            "contains a NUL character (\\u0000), which PostgreSQL cannot store; remove it or \
             encode the data (for example as base64)"
                .to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Value {
        let mut v = Value::from(1);
        for i in 0..depth {
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                serde_json::json!({ "a": v })
            };
        }
        v
    }

    #[test]
    fn the_depth_limit_is_exactly_what_readers_accept() {
        for depth in 0..=200 {
            let v = nested(depth);
            let text = serde_json::to_string(&v).unwrap();
            let readable = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(
                validate("payload", &v).is_ok(),
                readable,
                "depth {depth}: the check and the reader disagree"
            );
        }
    }

    #[test]
    fn payload_size_is_counted_as_json_text() {
        let v = serde_json::json!({ "s": "x".repeat(100) });
        let len = serde_json::to_string(&v).unwrap().len();
        assert!(check_size(&v, len).is_ok());
        match check_size(&v, len - 1) {
            Err(StoreError::PayloadTooLarge { limit, size }) => {
                assert_eq!(limit, len - 1);
                assert!(size > limit);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nul_characters_are_refused_in_keys_and_values() {
        let err = validate("payload", &serde_json::json!({ "a": ["x\u{0}y"] })).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(validate("result", &serde_json::json!({ "k\u{0}": 1 })).is_err());
        assert!(validate("payload", &serde_json::json!({ "ok": "fine" })).is_ok());
    }
}
