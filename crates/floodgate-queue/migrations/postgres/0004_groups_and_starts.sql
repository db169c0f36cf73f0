-- Groups of jobs (`metadata.group`) that workers leave unclaimed until resumed: a webhook
-- destination that answered 410 Gone, say. Shared by every node on the database.
CREATE TABLE {t}paused_groups (
    name      text        PRIMARY KEY,
    reason    text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- When the current (or last) attempt started: the claim's time. The dashboard's
-- enqueue-to-start latency is `started_at - run_at` of recently finished jobs.
ALTER TABLE {t}jobs ADD COLUMN started_at timestamptz;

-- Counting the unfinished jobs reads only them (`Store::queue_activity`), however many
-- finished jobs the table keeps. `attempt >= 0` always holds: it is there so that the claim,
-- whose condition does not imply it, can never use this index (the planner did, sorting every
-- runnable job per claim: a third of the claim rate).
CREATE INDEX {n}jobs_active ON {t}jobs (queue, state, run_at)
    WHERE state IN ('pending', 'failed', 'running') AND attempt >= 0;
