-- Idempotent consumers: one row per (consumer, message key) processed, written in the same
-- transaction as the effect.
CREATE TABLE {t}inbox (
    consumer     TEXT    NOT NULL,
    message_key  TEXT    NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_key)
) WITHOUT ROWID;
CREATE INDEX {t}inbox_processed ON {t}inbox (processed_at);

-- Single-instance roles held by an expiring lease row.
CREATE TABLE {t}leaders (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL
);
