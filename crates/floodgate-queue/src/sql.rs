//! Enqueue from SQL, inside your own transaction, from any language (PostgreSQL).
//!
//! The migrations create, in the store's schema (next to its `floodgate_jobs` table):
//!
//! ```sql
//! floodgate_enqueue(kind text, payload jsonb DEFAULT 'null', queue text DEFAULT 'default',
//!                   priority integer DEFAULT 5, run_at timestamptz DEFAULT now(),
//!                   max_attempts integer DEFAULT 25, idempotency_key text DEFAULT NULL,
//!                   ordering_key text DEFAULT NULL, metadata jsonb DEFAULT '{}') RETURNS bigint
//! floodgate_enqueue_many(jobs jsonb) RETURNS SETOF bigint  -- an array of objects, ids in order
//! ```
//!
//! A business row and its job commit together or not at all, and workers wake at once (the
//! same `NOTIFY` as a Rust enqueue, sent at commit):
//!
//! ```sql
//! BEGIN;
//! INSERT INTO transfers (id, amount) VALUES (42, 100);
//! SELECT floodgate_enqueue(kind => 'transfer', payload => '{"id": 42}',
//!                          idempotency_key => 'transfer:42');
//! COMMIT;
//! ```
//!
//! The rules are those of [`Store::enqueue`](crate::Store::enqueue), checked in the database.
//! A broken rule raises an error naming the argument (also in the error's column field) and
//! the limit, with its own SQLSTATE:
//!
//! | SQLSTATE | rule |
//! |---|---|
//! | [`NAME_MISSING`] `FG001` | `kind` or `queue` null or empty, or a key empty |
//! | [`NAME_TOO_LONG`] `FG002` | a kind, queue or key over [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) characters |
//! | [`PRIORITY_OUT_OF_RANGE`] `FG003` | `priority` outside 1..=10 |
//! | [`ATTEMPTS_OUT_OF_RANGE`] `FG004` | `max_attempts` below 1 |
//! | [`NOT_JSON_SHAPE`] `FG005` | `metadata` not an object, `payload` SQL `NULL`, a batch not an array of objects |
//! | [`PAYLOAD_TOO_LARGE`] `FG006` | the payload's JSON over the store's `max_payload_bytes` |
//! | [`TOO_DEEP`] `FG007` | a payload or metadata nested deeper than [`MAX_JSON_DEPTH`](crate::MAX_JSON_DEPTH) |
//! | [`UNKNOWN_FIELD`] `FG008` | a batch job with a member that is not an argument |
//! | `22021`, `22P05` | a NUL character (PostgreSQL itself refuses it in `text` and `jsonb`) |
//! | `40001` | a repeated idempotency key whose job this transaction's snapshot cannot see (`REPEATABLE READ`): retry the transaction |
//!
//! The payload limit is the `max_payload_bytes` of the store that connected last (each
//! store writes its own to `floodgate_settings` at connect), measured on the JSON as
//! PostgreSQL prints it: a space after each `:` and `,`, so a few percent longer than the
//! compact JSON the Rust enqueue measures, never shorter.
//!
//! A repeated idempotency key (per queue) returns the existing job's id, also when two
//! transactions race with one key: the second waits for the first and returns its job.
//!
//! The functions are versioned with the schema: `floodgate_enqueue_version()` says which
//! definition is installed, and [`PgStoreBuilder::connect`](crate::PgStoreBuilder::connect)
//! refuses a database whose definition is older than [`ENQUEUE_VERSION`] with
//! [`StoreError::Outdated`](crate::StoreError::Outdated).

/// The version of the SQL enqueue functions this build creates and expects.
pub const ENQUEUE_VERSION: i32 = 1;
/// The migration that created the installed version.
pub const ENQUEUE_MIGRATION: i64 = 5;

/// SQLSTATE: `kind` or `queue` null or empty, or a key empty.
pub const NAME_MISSING: &str = "FG001";
/// SQLSTATE: a kind, queue or key longer than 255 characters.
pub const NAME_TOO_LONG: &str = "FG002";
/// SQLSTATE: `priority` outside 1..=10.
pub const PRIORITY_OUT_OF_RANGE: &str = "FG003";
/// SQLSTATE: `max_attempts` below 1.
pub const ATTEMPTS_OUT_OF_RANGE: &str = "FG004";
/// SQLSTATE: a JSON argument of the wrong shape (metadata not an object, a SQL `NULL` payload,
/// a batch that is not an array of objects).
pub const NOT_JSON_SHAPE: &str = "FG005";
/// SQLSTATE: a payload over the store's `max_payload_bytes`.
pub const PAYLOAD_TOO_LARGE: &str = "FG006";
/// SQLSTATE: a payload or metadata nested deeper than 127 levels.
pub const TOO_DEEP: &str = "FG007";
/// SQLSTATE: a member of a batch job that is not one of the arguments.
pub const UNKNOWN_FIELD: &str = "FG008";
