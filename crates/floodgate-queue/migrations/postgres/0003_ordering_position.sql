-- A job's place in its ordering key's line: its id, or, once retried from dead or cancelled,
-- a fresh value of the id sequence (behind every job enqueued or retried before the retry).
-- Jobs with one ordering key run one at a time in this order (the claim skips a job while one
-- ahead of it is unfinished). Taking the position from the id sequence keeps the claim's
-- "an older unfinished job blocks me" check race-free under concurrent claimers: a retried
-- job is, to them, exactly like a newly enqueued one.
ALTER TABLE {t}jobs ADD COLUMN ordering_seq bigint;
-- The claim's "is anything ahead of me unfinished" probe seeks on the position.
DROP INDEX {t}jobs_ordering;
CREATE INDEX {n}jobs_ordering ON {t}jobs (queue, ordering_key, (coalesce(ordering_seq, id)), id)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'failed', 'running');
