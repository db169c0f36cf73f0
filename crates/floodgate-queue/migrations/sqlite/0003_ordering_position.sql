-- A job's place in its ordering key's line: its id, or, once retried from dead or cancelled,
-- a position behind every job enqueued or retried before the retry. Jobs with one ordering key
-- run one at a time in this order (the claim skips a job while one ahead of it is unfinished).
ALTER TABLE {t}jobs ADD COLUMN ordering_seq INTEGER;
-- The claim's "is anything ahead of me unfinished" probe seeks on the position.
DROP INDEX {t}jobs_ordering;
CREATE INDEX {t}jobs_ordering ON {t}jobs (queue, ordering_key, coalesce(ordering_seq, id), id)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
