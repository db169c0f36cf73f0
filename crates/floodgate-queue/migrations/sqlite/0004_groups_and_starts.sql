-- Groups of jobs (`metadata.group`) that workers leave unclaimed until resumed: a webhook
-- destination that answered 410 Gone, say. Shared by every process on the database.
CREATE TABLE {t}paused_groups (
    name      TEXT    PRIMARY KEY,
    reason    TEXT    NOT NULL,
    paused_at INTEGER NOT NULL
);

-- When the current (or last) attempt started: the claim's time. The dashboard's
-- enqueue-to-start latency is `started_at - run_at` of recently finished jobs.
ALTER TABLE {t}jobs ADD COLUMN started_at INTEGER;
