-- floodgate job store, PostgreSQL. {t} is the schema-qualified table prefix, {n} the bare
-- prefix for index and trigger names, {channel} the NOTIFY channel.
CREATE TABLE {t}jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL,
    kind             text        NOT NULL,
    payload          jsonb       NOT NULL,
    priority         smallint    NOT NULL CHECK (priority BETWEEN 1 AND 10),
    run_at           timestamptz NOT NULL,
    state            text        NOT NULL
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    lease_owner      text,
    lease_token      bigint,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    idempotency_key  text,
    ordering_key     text,
    last_error       text,
    result           jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    -- A lease token exists exactly while the job runs: batch fences match on the token alone.
    CONSTRAINT {n}jobs_token_iff_running CHECK ((state = 'running') = (lease_token IS NOT NULL))
) WITH (fillfactor = 90);

-- The claim reads only runnable rows: finished and running jobs are not in this index.
CREATE INDEX {n}jobs_runnable ON {t}jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX {n}jobs_leases ON {t}jobs (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX {n}jobs_idempotency ON {t}jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX {n}jobs_ordering ON {t}jobs (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
CREATE INDEX {n}jobs_finished ON {t}jobs (state, finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');
CREATE INDEX {n}jobs_listing ON {t}jobs (queue, state, id);

CREATE TABLE {t}queues (
    name       text        PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One NOTIFY per inserting statement and queue (not per row); identical notifications in
-- one transaction are folded by PostgreSQL, and all are delivered at commit.
CREATE FUNCTION {t}notify_enqueued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}', q.queue)
       FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'pending') AS q;
    RETURN NULL;
END
$$;
CREATE TRIGGER {n}jobs_notify AFTER INSERT ON {t}jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {t}notify_enqueued();
