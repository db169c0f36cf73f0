-- floodgate job store, SQLite. {t} is the table prefix. Times are microseconds since the epoch.
CREATE TABLE {t}jobs (
    id               INTEGER PRIMARY KEY,
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    run_at           INTEGER NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    ordering_key     TEXT,
    last_error       TEXT,
    result           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    metadata         TEXT    NOT NULL DEFAULT '{}',
    -- A lease token exists exactly while the job runs: batch fences match on the token alone.
    CHECK ((state = 'running') = (lease_token IS NOT NULL))
);

-- The claim reads only runnable rows: finished and running jobs are not in this index.
CREATE INDEX {t}jobs_runnable ON {t}jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX {t}jobs_leases ON {t}jobs (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX {t}jobs_idempotency ON {t}jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX {t}jobs_ordering ON {t}jobs (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
CREATE INDEX {t}jobs_finished ON {t}jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE INDEX {t}jobs_listing ON {t}jobs (queue, state, id);

CREATE TABLE {t}queues (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
