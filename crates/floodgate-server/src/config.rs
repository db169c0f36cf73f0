//! The server's settings: defaults, then a TOML file, then `FLOODGATE_*` environment
//! variables, then command-line flags (each layer overrides the one before), checked once at
//! start with errors that name the key, the bad value and the fix.
//!
//! ```
//! use floodgate_server::config::Config;
//!
//! let config = Config::default();
//! assert_eq!(config.listen.to_string(), "127.0.0.1:7070");
//! assert_eq!(config.database_url, "floodgate.db");
//! config.validate().unwrap();
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::limits::config::{BreakerSpec, LimiterSpec, RateLimitSpec};

/// The top-level settings' keys, as in the TOML file (and, upper-cased after `FLOODGATE_`,
/// the environment): the fields of [`Config`] that are not tables, read from its serde form,
/// so a new setting is a key without being listed twice.
///
/// ```
/// let keys = floodgate_server::config::keys();
/// assert!(keys.contains(&"max_batch".to_owned()));
/// assert!(!keys.contains(&"webhooks".to_owned())); // a table: `[webhooks]` in the file
/// ```
pub fn keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

/// Every setting of `floodgate serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:7070`: loopback only).
    pub listen: SocketAddr,
    /// A SQLite file path (default `floodgate.db`, created and migrated on start) or a
    /// `postgres://` URL.
    pub database_url: String,
    /// When set, every mutating route needs `Authorization: Bearer <api_token>`, and every
    /// other `/v1` route needs it or the read-only token.
    pub api_token: Option<String>,
    /// When set, allows GET routes only.
    pub read_only_token: Option<String>,
    /// The largest payload of one job, as JSON text, in bytes (default 1 MiB).
    pub max_payload_bytes: usize,
    /// The most jobs in one batch enqueue (default 1,000).
    pub max_batch: usize,
    /// The largest request body, in bytes (default 16 MiB).
    pub max_body_bytes: usize,
    /// Requests running at once; more get 503 with `Retry-After` (default 1,024). Health
    /// checks, long polls and event streams do not count: they have bounds of their own.
    pub max_concurrent_requests: usize,
    /// Long-polling claims (`wait` > 0) waiting at once (default 4,096); past it a claim
    /// answers at once, with what it finds and `Retry-After`.
    pub max_long_polls: usize,
    /// Dashboard event streams open at once (default 64); past it one is refused with 503 and
    /// `Retry-After`.
    pub max_event_streams: usize,
    /// A request taking longer is answered 503 (default 60 s; long polls may wait up to 30 s).
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// A request's body must arrive whole within this, counted from its head (default 30 s);
    /// past it the request is answered 408 and the connection closed.
    #[serde(with = "secs")]
    pub request_body_timeout: Duration,
    /// A request's head must arrive whole within this, and a keep-alive connection is closed
    /// when no next request begins within it (default 10 s).
    #[serde(with = "secs")]
    pub header_read_timeout: Duration,
    /// Connections open at once (default 8,192). At the bound the connection idle the longest
    /// is closed to admit a new one; one answering a request never is.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before releasing the leases HTTP
    /// workers still hold (default 10 s).
    #[serde(with = "secs")]
    pub shutdown_grace: Duration,
    /// How often the maintenance leader takes back the jobs whose lease ran out (a crashed
    /// worker's), 1 to 3,600 s (default 1 s): a crashed worker's jobs run again within their
    /// lease plus this.
    #[serde(with = "secs")]
    pub rescue_interval: Duration,
    /// SQLite only: `synchronous = FULL`, so a 202 survives a power cut (default true; group
    /// commit pays for the fsync).
    pub sqlite_synchronous_full: bool,
    /// Pool size on PostgreSQL (default 16).
    pub postgres_max_connections: u32,
    /// The PostgreSQL schema for floodgate's tables and SQL functions (created if missing;
    /// default: the connection's `search_path`, usually `public`), so several apps or
    /// environments can share one database.
    pub postgres_schema: Option<String>,
    /// `GET /v1/queues` answers from a sample of the counts at most this old (default 1 s;
    /// 0 counts on every request). Counting reads an index entry per job.
    #[serde(with = "secs")]
    pub queue_stats_max_age: Duration,
    /// The log filter: a default level and `target=level` directives, comma-separated
    /// (`info`, `warn,floodgate_server=debug`; default `info`). `RUST_LOG` overrides it.
    pub log: String,
    /// How log lines are written to standard output: `text` (default; coloured only on a
    /// terminal) or `json` (one object per line, for log shippers).
    pub log_format: LogFormat,
    /// Webhook delivery (the built-in job kind `webhook`): `[webhooks]` in the file.
    pub webhooks: crate::webhook::config::WebhookConfig,
    /// A Redis URL: with it, the named limiters and rate limits hold across every server
    /// using it, and breakers follow each other's opens and closes; without, each server
    /// limits alone.
    pub redis_url: Option<String>,
    /// Named concurrency limits, `[limiters.NAME]`: permits over HTTP.
    pub limiters: BTreeMap<String, LimiterSpec>,
    /// Named rate limits, `[rate_limits.NAME]`: checks per key over HTTP.
    pub rate_limits: BTreeMap<String, RateLimitSpec>,
    /// Named circuit breakers, `[breakers.NAME]`: calls admitted and reported over HTTP.
    pub breakers: BTreeMap<String, BreakerSpec>,
    /// The outbox relayed to brokers, `[relays.NAME]`: job kinds published to NATS JetStream
    /// or RabbitMQ.
    pub relays: BTreeMap<String, crate::relay::config::RelayConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            database_url: "floodgate.db".to_owned(),
            api_token: None,
            read_only_token: None,
            max_payload_bytes: floodgate_queue::DEFAULT_MAX_PAYLOAD_BYTES,
            max_batch: 1_000,
            max_body_bytes: 16 * 1024 * 1024,
            max_concurrent_requests: 1_024,
            max_long_polls: 4_096,
            max_event_streams: 64,
            request_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 8_192,
            shutdown_grace: Duration::from_secs(10),
            rescue_interval: Duration::from_secs(1),
            sqlite_synchronous_full: true,
            postgres_max_connections: 16,
            postgres_schema: None,
            queue_stats_max_age: Duration::from_secs(1),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            webhooks: Default::default(),
            redis_url: None,
            limiters: BTreeMap::new(),
            rate_limits: BTreeMap::new(),
            breakers: BTreeMap::new(),
            relays: BTreeMap::new(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal only.
    #[default]
    Text,
    /// One JSON object per line, with the span's fields (a request's id, say).
    Json,
}

/// A setting that cannot be used, and what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range or malformed.
    #[error("invalid setting {key} = {value}: {fix}")]
    Invalid {
        /// The setting's key (as in the TOML file; `limiters.llm.lease_ttl` in a table).
        key: String,
        /// The value given (secrets masked).
        value: String,
        /// What a valid value looks like.
        fix: String,
    },
    /// The file or environment could not be read or parsed.
    #[error("{0}")]
    Load(String),
}

/// Values given on the command line, which override everything else.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then `FLOODGATE_*` variables
    /// (`FLOODGATE_DATABASE_URL`, `FLOODGATE_API_TOKEN`, ...), then `overrides`, and checks
    /// the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "the configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let keys = keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let config: Config = figment
            // Only the settings' own names: other FLOODGATE_* variables (the client's
            // FLOODGATE_SERVER, the tests' FLOODGATE_REQUIRE_SERVICES) are not settings.
            .merge(Env::prefixed("FLOODGATE_").only(&keys))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, value: String, fix: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                value,
                fix: fix.to_owned(),
            })
        };
        if self.database_url.trim().is_empty() {
            return invalid(
                "database_url",
                "\"\"".into(),
                "give a SQLite file path (floodgate.db) or postgres://user@host/database",
            );
        }
        for (key, token) in [
            ("api_token", &self.api_token),
            ("read_only_token", &self.read_only_token),
        ] {
            if let Some(t) = token
                && t.len() < 16
            {
                return invalid(
                    key,
                    "***".into(),
                    "use at least 16 characters (e.g. `openssl rand -hex 32`)",
                );
            }
        }
        if self.read_only_token.is_some() && self.read_only_token == self.api_token {
            return invalid(
                "read_only_token",
                "***".into(),
                "must differ from api_token",
            );
        }
        if !(1..=64 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return invalid(
                "max_payload_bytes",
                self.max_payload_bytes.to_string(),
                "between 1 and 67108864 (64 MiB)",
            );
        }
        if !(1..=100_000).contains(&self.max_batch) {
            return invalid(
                "max_batch",
                self.max_batch.to_string(),
                "between 1 and 100000",
            );
        }
        if self.max_body_bytes < self.max_payload_bytes {
            return invalid(
                "max_body_bytes",
                self.max_body_bytes.to_string(),
                "at least max_payload_bytes",
            );
        }
        if self.max_concurrent_requests == 0 {
            return invalid("max_concurrent_requests", "0".into(), "at least 1");
        }
        if self.max_long_polls == 0 {
            return invalid("max_long_polls", "0".into(), "at least 1");
        }
        if self.max_event_streams == 0 {
            return invalid("max_event_streams", "0".into(), "at least 1");
        }
        if self.request_timeout < Duration::from_secs(31) {
            return invalid(
                "request_timeout",
                self.request_timeout.as_secs().to_string(),
                "at least 31 seconds (a long-polling claim may wait 30)",
            );
        }
        if self.request_body_timeout.is_zero() || self.request_body_timeout > self.request_timeout {
            return invalid(
                "request_body_timeout",
                self.request_body_timeout.as_secs().to_string(),
                "between 1 second and request_timeout",
            );
        }
        if self.header_read_timeout.is_zero() {
            return invalid("header_read_timeout", "0".into(), "at least 1 second");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "0".into(), "at least 1");
        }
        if self
            .log
            .parse::<tracing_subscriber::filter::Targets>()
            .is_err()
        {
            return invalid(
                "log",
                format!("{:?}", self.log),
                "a level (error, warn, info, debug, trace) and target=level directives, \
                 comma-separated: warn,floodgate_server=debug",
            );
        }
        if !(1..=3_600).contains(&self.rescue_interval.as_secs()) {
            return invalid(
                "rescue_interval",
                self.rescue_interval.as_secs().to_string(),
                "1 to 3600 seconds",
            );
        }
        if self.postgres_max_connections == 0 {
            return invalid("postgres_max_connections", "0".into(), "at least 1");
        }
        if let Err(e) = self.webhooks.validate() {
            return invalid("webhooks", "(see the file)".into(), &e.to_string());
        }
        if let Some(url) = &self.redis_url
            && let Err(e) = redis::Client::open(url.as_str())
        {
            return invalid(
                "redis_url",
                mask_url(url),
                &format!("{e}; write redis://host:6379 (or rediss:// for TLS)"),
            );
        }
        crate::relay::config::validate(&self.relays)?;
        // The named limits' own checks, without reaching Redis.
        let local = Config {
            redis_url: None,
            ..self.clone()
        };
        crate::limits::Limits::from_config(&local)?;
        Ok(())
    }

    /// The settings as TOML, with tokens masked and a password in the database URL hidden.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        let mask = |t: &Option<String>| t.as_ref().map(|_| "***".to_owned());
        shown.api_token = mask(&self.api_token);
        shown.read_only_token = mask(&self.read_only_token);
        shown.database_url = mask_url(&self.database_url);
        let hide = |secrets: &mut Vec<String>| secrets.iter_mut().for_each(|s| *s = "***".into());
        hide(&mut shown.webhooks.secrets);
        shown.webhooks.redis_url = self.webhooks.redis_url.as_deref().map(mask_url);
        shown.redis_url = self.redis_url.as_deref().map(mask_url);
        for relay in shown.relays.values_mut() {
            relay.url = mask_url(&relay.url);
        }
        for d in shown.webhooks.destinations.values_mut() {
            if let Some(secrets) = d.secrets.as_mut() {
                hide(secrets);
            }
        }
        toml_string(&shown)
    }

    /// Whether any token is configured (then `/v1` routes need one).
    pub fn auth_enabled(&self) -> bool {
        self.api_token.is_some() || self.read_only_token.is_some()
    }
}

/// `url` with a password between `user:` and `@` replaced by `***`.
pub fn mask_url(url: &str) -> String {
    floodgate_queue::redact_url(url)
}

fn toml_string(config: &Config) -> String {
    // Unset settings (`None`) are left out: absent from a file, they keep their defaults.
    toml::to_string(config)
        .unwrap_or_else(|e| format!("# the settings cannot be written as TOML: {e}\n"))
}

/// A figment error as one line naming the key (`FLOODGATE_MAX_BATCH` → `max_batch`).
fn describe_figment(e: figment::Error) -> String {
    let mut lines = Vec::new();
    for err in e {
        let key = err.path.join(".");
        let source = err
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        let what = match &err.kind {
            figment::error::Kind::UnknownField(field, _) => format!(
                "unknown setting {field:?}; see `floodgate config` for the settings there are"
            ),
            kind => format!("{kind}"),
        };
        lines.push(if key.is_empty() {
            format!("{what} (from {source})")
        } else {
            format!("invalid setting {key}: {what} (from {source})")
        });
    }
    lines.join("; ")
}

/// Durations as whole seconds in TOML and the environment.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let config = Config {
            api_token: Some("s3cret-s3cret-s3cret".into()),
            database_url: "postgres://app:pa55word@db/jobs".into(),
            ..Config::default()
        };
        let shown = config.masked_toml();
        assert!(
            !shown.contains("s3cret") && !shown.contains("pa55word"),
            "{shown}"
        );
        assert!(shown.contains("api_token = \"***\""), "{shown}");
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let config = Config {
            max_batch: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("max_batch = 0") && err.contains("between"),
            "{err}"
        );
        let short = Config {
            api_token: Some("short".into()),
            ..Config::default()
        };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("api_token") && !err.contains("short"), "{err}");
    }
}
