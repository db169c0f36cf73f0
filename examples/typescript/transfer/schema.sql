-- The example's tables. server.mjs applies this file at start (every statement can run again).
-- They live next to floodgate's own tables (floodgate_jobs, ...) and its floodgate_enqueue()
-- function: the app connects with that schema on its search_path, so a transfer's row and its
-- job are written by the same transaction.

CREATE TABLE IF NOT EXISTS accounts (
    id      text   PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0)
);

-- One row per transfer asked for. `status`: pending (its job has not applied it yet),
-- confirmed (the money moved) or failed (it would have overdrawn `from_account`).
-- The account references are checked at COMMIT (DEFERRABLE INITIALLY DEFERRED): POST
-- /transfers does not look the accounts up first; an unknown account fails the commit, which
-- then keeps neither the row nor its job (the outbox's atomicity, which the test checks).
CREATE TABLE IF NOT EXISTS transfers (
    id             bigserial   PRIMARY KEY,
    from_account   text        NOT NULL REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED,
    to_account     text        NOT NULL REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED,
    amount         bigint      NOT NULL CHECK (amount > 0),
    status         text        NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'confirmed', 'failed')),
    failure_reason text,
    job_id         bigint      UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account)
);

-- The inbox: one row per floodgate job whose effect has been applied, written in the same
-- transaction as the effect. A redelivered job finds its row and changes nothing.
CREATE TABLE IF NOT EXISTS processed_jobs (
    job_id       bigint      PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
