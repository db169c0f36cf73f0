-- A job's place in its ordering key's line: its id, or, once retried from dead or cancelled,
-- a position behind every job enqueued or retried before the retry. Jobs with one ordering key
-- run one at a time in this order (the claim skips a job while one ahead of it is unfinished).
ALTER TABLE {t}jobs ADD COLUMN ordering_seq INTEGER;
