//! [Standard Webhooks](https://www.standardwebhooks.com/) signatures.
//!
//! Every delivery carries three headers:
//!
//! - `webhook-id`: the message id, the same on every retry of one message (receivers use it
//!   to drop duplicates);
//! - `webhook-timestamp`: when this attempt was sent, in unix seconds;
//! - `webhook-signature`: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, one
//!   entry per secret, separated by spaces, so a secret can be rotated without downtime: sign
//!   with the old and the new one until every receiver has the new one.
//!
//! A [`Secret`] is written `whsec_<base64 of the key bytes>`; the `whsec_` prefix is optional,
//! as in the reference libraries.
//!
//! ```
//! use floodgate_server::webhook::signature::{Secret, sign, verify};
//!
//! let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let body = br#"{"test": 2432232314}"#;
//! let header = sign(&[secret.clone()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! // What a receiver does with the three headers and the raw body:
//! assert!(verify(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &header));
//! assert!(!verify(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &header));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use sha2::Sha256;

/// The `webhook-id` header: the message id.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// The `webhook-timestamp` header: unix seconds of this attempt.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// The `webhook-signature` header: the space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Standard base64 that takes the key with or without its `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A signing key, parsed from `whsec_<base64>` (or the bare base64).
///
/// Its `Debug` output shows the key's length only, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

/// Why a webhook secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Nothing was given (or only `whsec_`).
    #[error(
        "the webhook secret is empty; write it as `whsec_` followed by the base64 of random \
         bytes (24 to 64 bytes is what Standard Webhooks recommends)"
    )]
    Empty,
    /// The part after the optional `whsec_` prefix is not standard base64.
    #[error(
        "the webhook secret is not valid base64 after the optional `whsec_` prefix ({0}); \
         write it as `whsec_` followed by standard base64 (A-Z, a-z, 0-9, +, /)"
    )]
    Base64(#[from] base64::DecodeError),
}

impl Secret {
    /// The prefix that marks a Standard Webhooks secret.
    pub const PREFIX: &'static str = "whsec_";

    /// Parses `whsec_<base64>` or the bare base64; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let encoded = text.strip_prefix(Self::PREFIX).unwrap_or(text);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        Self::from_bytes(LENIENT.decode(encoded)?)
    }

    /// A secret made of these key bytes; refused if there are none.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }

    /// The secret written the way it is shared with a receiver: `whsec_<base64>`.
    pub fn to_whsec(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.key))
    }

    /// HMAC-SHA256 of `{id}.{timestamp}.{body}` under this key.
    fn tag(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.key.len())
    }
}

/// The `webhook-signature` header value: `v1,<base64>` for each secret, in order, separated by
/// spaces. With no secrets it is empty (and [`headers`] refuses that).
pub fn sign(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1,{}", STANDARD.encode(secret.tag(id, timestamp, body))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why the signature headers could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// There was no secret to sign with.
    #[error("no webhook secret to sign with; give the destination at least one `whsec_` secret")]
    NoSecrets,
    /// The message id holds characters an HTTP header cannot carry.
    #[error(
        "the webhook id {id:?} cannot be sent as an HTTP header value; use visible ASCII \
         only, such as `msg_<job id>`"
    )]
    BadId {
        /// The id as given.
        id: String,
    },
}

/// The three Standard Webhooks headers for one attempt: `webhook-id`, `webhook-timestamp` and
/// `webhook-signature`, in that order.
///
/// ```
/// use floodgate_server::webhook::signature::{Secret, headers};
///
/// let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let [id, timestamp, signature] = headers(&[secret], "msg_1", 1614265330, b"{}")?;
/// assert_eq!(id.0, "webhook-id");
/// assert_eq!(timestamp.1, "1614265330");
/// assert!(signature.1.to_str()?.starts_with("v1,"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn headers(
    secrets: &[Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(HeaderName, HeaderValue); 3], HeaderError> {
    if secrets.is_empty() {
        return Err(HeaderError::NoSecrets);
    }
    let id_value = HeaderValue::from_str(id)
        .ok()
        .filter(|_| !id.is_empty())
        .ok_or_else(|| HeaderError::BadId { id: id.to_owned() })?;
    let signature = HeaderValue::try_from(sign(secrets, id, timestamp, body))
        .expect("`v1,` and base64 are always a valid header value");
    Ok([
        (WEBHOOK_ID, id_value),
        (WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp)),
        (WEBHOOK_SIGNATURE, signature),
    ])
}

/// Whether `header_value` (a `webhook-signature` header) holds a `v1` signature of
/// `{id}.{timestamp}.{body}` under `secret`.
///
/// Entries of other versions and entries that are not base64 are skipped; the comparison is
/// constant-time. `body` must be the raw bytes received, not re-serialized JSON.
///
/// This checks the signature only: a receiver should also refuse a `webhook-timestamp` too far
/// from its own clock (the reference libraries allow five minutes) so a captured request cannot
/// be replayed later, and may drop a `webhook-id` it has already handled.
pub fn verify(secret: &Secret, id: &str, timestamp: i64, body: &[u8], header_value: &str) -> bool {
    let expected = secret.tag(id, timestamp, body);
    let mut matched = false;
    for entry in header_value.split_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            continue;
        };
        // No early return: every entry costs the same whether or not one matched.
        matched |= constant_time_eq::constant_time_eq(&expected, &given);
    }
    matched
}

#[cfg(test)]
mod tests;
