-- Idempotent consumers: one row per (consumer, message key) processed, written in the same
-- transaction as the effect.
CREATE TABLE {t}inbox (
    consumer     text        NOT NULL,
    message_key  text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_key)
);
CREATE INDEX {n}inbox_processed ON {t}inbox (processed_at);

-- Single-instance roles held by an expiring lease row.
CREATE TABLE {t}leaders (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
