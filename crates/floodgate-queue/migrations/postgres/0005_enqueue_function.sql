-- Enqueue from SQL, inside the caller's own transaction, from any language:
--
--   BEGIN;
--   INSERT INTO transfers ...;
--   SELECT floodgate_enqueue(kind => 'transfer', payload => '{"id": 42}');
--   COMMIT;  -- the row and the job both, or neither
--
-- The rules are the Rust enqueue's (`NewJob::validate`, the store's payload limit), checked
-- here so that a job written by SQL can always be read back by every worker. Each broken rule
-- raises its own SQLSTATE in class FG (see `floodgate_queue::sql`), with the argument named
-- in the message and in the error's column field. A NUL character cannot reach these checks:
-- PostgreSQL refuses it in `text` (22021) and in `jsonb` (22P05) while reading the arguments.
--
-- The version is `{t}enqueue_version()`: a migration that changes these functions replaces
-- it too, and a store refuses to start on a database whose version is older than it knows.
-- Every statement here can run again (the store's error says how, should the functions have
-- been replaced by hand).

-- Settings the functions read; a store writes its own when it connects.
CREATE TABLE IF NOT EXISTS {t}settings (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO {t}settings (name, value) VALUES ('max_payload_bytes', 1048576)
    ON CONFLICT (name) DO NOTHING;

CREATE OR REPLACE FUNCTION {t}enqueue_version() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1';

-- The deepest nesting of arrays and objects in `value` (0 for a scalar), walked without
-- recursion in PL/pgSQL (a CTE), so a hostile document cannot exhaust the stack.
CREATE OR REPLACE FUNCTION {t}json_depth(value jsonb) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS $$
    WITH RECURSIVE walk(v, depth) AS (
        SELECT value, 1 WHERE jsonb_typeof(value) IN ('object', 'array')
        UNION ALL
        SELECT child.v, walk.depth + 1
          FROM walk
          CROSS JOIN LATERAL (
              SELECT e.value FROM jsonb_each(
                  CASE WHEN jsonb_typeof(walk.v) = 'object' THEN walk.v END) AS e
              UNION ALL
              SELECT a.value FROM jsonb_array_elements(
                  CASE WHEN jsonb_typeof(walk.v) = 'array' THEN walk.v END) AS a
          ) AS child(v)
         WHERE jsonb_typeof(child.v) IN ('object', 'array')
    )
    SELECT coalesce(max(depth), 0) FROM walk
$$;

-- One job, checked: `label` prefixes the argument's name in errors (`jobs[3].` for a batch).
CREATE OR REPLACE FUNCTION {t}enqueue_checked(
    label text, kind text, payload jsonb, queue text, priority integer, run_at timestamptz,
    max_attempts integer, idempotency_key text, ordering_key text, metadata jsonb
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    name_arg text;
    name_val text;
    json_arg text;
    json_val jsonb;
    size integer;
    max_size bigint;
    job_id bigint;
BEGIN
    FOREACH name_arg IN ARRAY ARRAY['kind', 'queue', 'idempotency_key', 'ordering_key'] LOOP
        name_val := CASE name_arg WHEN 'kind' THEN kind WHEN 'queue' THEN queue
                        WHEN 'idempotency_key' THEN idempotency_key ELSE ordering_key END;
        IF name_val IS NULL AND name_arg IN ('kind', 'queue') THEN
            RAISE EXCEPTION '%: must not be null', label || name_arg
                USING ERRCODE = 'FG001', COLUMN = name_arg,
                      HINT = 'give a name of 1 to 255 characters';
        ELSIF name_val = '' THEN
            RAISE EXCEPTION '%: must not be empty', label || name_arg
                USING ERRCODE = 'FG001', COLUMN = name_arg,
                      HINT = 'give a name of 1 to 255 characters, or leave a key out (NULL)';
        ELSIF char_length(name_val) > 255 THEN
            RAISE EXCEPTION '%: is % characters long; at most 255', label || name_arg,
                    char_length(name_val)
                USING ERRCODE = 'FG002', COLUMN = name_arg;
        END IF;
    END LOOP;
    IF priority IS NULL OR priority NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION '%: % is outside 1..=10', label || 'priority', coalesce(priority::text, 'null')
            USING ERRCODE = 'FG003', COLUMN = 'priority',
                  HINT = '10 runs first; the default is 5';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION '%: % is outside 1..=2147483647', label || 'max_attempts',
                coalesce(max_attempts::text, 'null')
            USING ERRCODE = 'FG004', COLUMN = 'max_attempts';
    END IF;
    IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
        RAISE EXCEPTION '%: must be a JSON object', label || 'metadata'
            USING ERRCODE = 'FG005', COLUMN = 'metadata', HINT = 'the default is {}';
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION '%: must not be SQL NULL', label || 'payload'
            USING ERRCODE = 'FG005', COLUMN = 'payload',
                  HINT = 'pass a JSON value; the JSON null is ''null''::jsonb';
    END IF;
    -- As PostgreSQL prints it (a space after each ':' and ','): a little longer than the
    -- compact JSON the Rust enqueue measures, never shorter.
    size := octet_length(payload::text);
    SELECT s.value INTO max_size FROM {t}settings AS s WHERE s.name = 'max_payload_bytes';
    IF size > coalesce(max_size, 1048576) THEN
        RAISE EXCEPTION '%: is % bytes of JSON; at most %', label || 'payload', size,
                coalesce(max_size, 1048576)
            USING ERRCODE = 'FG006', COLUMN = 'payload',
                  HINT = 'move large data to object storage and enqueue a reference to it';
    END IF;
    -- Nesting deeper than 127 needs at least 256 bytes of brackets: skip the walk below that.
    FOREACH json_arg IN ARRAY ARRAY['payload', 'metadata'] LOOP
        json_val := CASE json_arg WHEN 'payload' THEN payload ELSE metadata END;
        IF octet_length(json_val::text) > 254 AND {t}json_depth(json_val) > 127 THEN
            RAISE EXCEPTION '%: is nested % levels deep; at most 127', label || json_arg,
                    {t}json_depth(json_val)
                USING ERRCODE = 'FG007', COLUMN = json_arg;
        END IF;
    END LOOP;
    -- A repeated idempotency key returns the job that holds it. Against a concurrent
    -- transaction inserting the same key, the INSERT waits for it: committed, its job is
    -- found by the next statement (a new snapshot under READ COMMITTED); rolled back, this
    -- INSERT goes ahead. A row deleted between the two (retention) is inserted afresh.
    FOR try_number IN 1..3 LOOP
        INSERT INTO {t}jobs AS j (queue, kind, payload, priority, run_at, state, max_attempts,
                                  idempotency_key, ordering_key, metadata)
        VALUES (queue, kind, payload, priority, coalesce(run_at, now()), 'pending',
                max_attempts, idempotency_key, ordering_key, metadata)
        ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO job_id;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
        SELECT j.id INTO job_id FROM {t}jobs AS j
         WHERE j.queue = {n}enqueue_checked.queue
           AND j.idempotency_key = {n}enqueue_checked.idempotency_key;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    -- Only a snapshot older than the other transaction's commit (REPEATABLE READ or
    -- SERIALIZABLE) gets here: the standard answer is to retry the transaction.
    RAISE EXCEPTION '%: the job holding key % in queue % is not visible to this transaction',
            label || 'idempotency_key', idempotency_key, queue
        USING ERRCODE = '40001', COLUMN = 'idempotency_key',
              HINT = 'retry the transaction';
END
$$;

-- Enqueues one job; returns its id (the existing job's id for a repeated idempotency key).
CREATE OR REPLACE FUNCTION {t}enqueue(
    kind text,
    payload jsonb DEFAULT 'null',
    queue text DEFAULT 'default',
    priority integer DEFAULT 5,
    run_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT 25,
    idempotency_key text DEFAULT NULL,
    ordering_key text DEFAULT NULL,
    metadata jsonb DEFAULT '{}'
) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT {t}enqueue_checked('', kind, payload, queue, priority, run_at, max_attempts,
                              idempotency_key, ordering_key, metadata)
$$;

-- Enqueues a JSON array of jobs, each an object with the arguments of `enqueue` as members
-- (`kind` required); returns their ids in order. One bad job fails the whole call, naming it.
CREATE OR REPLACE FUNCTION {t}enqueue_many(jobs jsonb) RETURNS SETOF bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    job jsonb;
    n integer := 0;
    unknown text;
BEGIN
    IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
        RAISE EXCEPTION 'jobs: must be a JSON array of job objects'
            USING ERRCODE = 'FG005', COLUMN = 'jobs';
    END IF;
    FOR job IN SELECT e.value FROM jsonb_array_elements(jobs) WITH ORDINALITY AS e ORDER BY e.ordinality
    LOOP
        IF jsonb_typeof(job) <> 'object' THEN
            RAISE EXCEPTION 'jobs[%]: must be a JSON object', n
                USING ERRCODE = 'FG005', COLUMN = 'jobs';
        END IF;
        SELECT k INTO unknown FROM jsonb_object_keys(job) AS k
         WHERE k NOT IN ('kind', 'payload', 'queue', 'priority', 'run_at', 'max_attempts',
                         'idempotency_key', 'ordering_key', 'metadata')
         LIMIT 1;
        IF unknown IS NOT NULL THEN
            RAISE EXCEPTION 'jobs[%].%: is not a job field', n, unknown
                USING ERRCODE = 'FG008', COLUMN = 'jobs',
                      HINT = 'the fields are kind, payload, queue, priority, run_at, '
                             'max_attempts, idempotency_key, ordering_key, metadata';
        END IF;
        RETURN NEXT {t}enqueue_checked(
            format('jobs[%s].', n),
            job ->> 'kind',
            CASE WHEN job ? 'payload' THEN job -> 'payload' ELSE 'null'::jsonb END,
            coalesce(job ->> 'queue', 'default'),
            coalesce((job ->> 'priority')::integer, 5),
            (job ->> 'run_at')::timestamptz,
            coalesce((job ->> 'max_attempts')::integer, 25),
            job ->> 'idempotency_key',
            job ->> 'ordering_key',
            coalesce(job -> 'metadata', '{}'::jsonb));
        n := n + 1;
    END LOOP;
END
$$;
