//! URLs as they may be shown: in errors, logs and `floodgate config`.
//!
//! ```
//! use floodgate_queue::redact_url;
//!
//! assert_eq!(redact_url("amqp://guest:secret@mq:5672/%2f"), "amqp://guest:***@mq:5672/%2f");
//! assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
//! ```

/// `url` with the password (between `user:` and `@`) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
