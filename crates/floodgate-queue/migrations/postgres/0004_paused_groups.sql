-- Groups of jobs (`metadata.group`) that workers leave unclaimed until resumed: a webhook
-- destination that answered 410 Gone, say. Shared by every node on the database.
CREATE TABLE {t}paused_groups (
    name      text        PRIMARY KEY,
    reason    text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now()
);
