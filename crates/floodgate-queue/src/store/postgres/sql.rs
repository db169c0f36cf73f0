//! The PostgreSQL statements, rendered once per store with its schema.

use crate::store::migrate::Names;

/// Columns of a job, in the order `job_from_row` reads them, with a table alias.
fn columns(alias: &str) -> String {
    [
        "id",
        "queue",
        "kind",
        "payload",
        "priority",
        "run_at",
        "state",
        "attempt",
        "max_attempts",
        "lease_owner",
        "lease_token",
        "lease_expires_at",
        "cancel_requested",
        "idempotency_key",
        "ordering_key",
        "last_error",
        "result",
        "created_at",
        "updated_at",
        "finished_at",
        "started_at",
        "metadata",
    ]
    .iter()
    .map(|c| format!("{alias}.{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// A job's state as readers see it: a held job (claimed ahead, leased, not started) is
/// `pending` (see `Claim::hold`).
const REPORTED_STATE: &str =
    "CASE WHEN j.state = 'running' AND j.started_at IS NULL THEN 'pending' ELSE j.state END";

/// [`columns`] of `j` for readers: the state as reported.
fn read_columns() -> String {
    columns("j").replace("j.state,", &format!("{REPORTED_STATE} AS state,"))
}

#[derive(Debug)]
pub(super) struct Sql {
    pub(super) insert_one: String,
    pub(super) insert_many: String,
    pub(super) ids_by_key: String,
    pub(super) claim_one_queue: String,
    pub(super) claim_queues: String,
    pub(super) claim_after_cursor: String,
    pub(super) start_held: String,
    pub(super) release_held: String,
    pub(super) held_states: String,
    pub(super) extend: String,
    pub(super) complete: String,
    pub(super) complete_many: String,
    pub(super) fail: String,
    pub(super) dead: String,
    pub(super) snooze: String,
    pub(super) record_attempt: String,
    pub(super) rescue: String,
    pub(super) retry_dead: String,
    pub(super) retry_dead_all: String,
    pub(super) cancel: String,
    pub(super) set_paused: String,
    pub(super) state_of: String,
    pub(super) stats: String,
    pub(super) paused_queues: String,
    pub(super) delete_finished: String,
    pub(super) job: String,
    pub(super) list: String,
    pub(super) activity: String,
    pub(super) count: String,
    pub(super) failure_groups: String,
    pub(super) recent_waits: String,
    pub(super) notify: String,
    pub(super) running_of_kind: String,
    pub(super) inbox_record: String,
    pub(super) inbox_delete: String,
    pub(super) leader_acquire: String,
    pub(super) leader_release: String,
    pub(super) pause_group: String,
    pub(super) resume_group: String,
    pub(super) paused_groups: String,
}

/// The claim: lock the next runnable rows, skipping rows other claimers hold, and lease them
/// in the same statement. `{queue}` is the queue condition, `{not_paused}` the pause check,
/// `{skip}` the parameter of the groups to leave and `{hold}` whether the jobs are held, not
/// started (the last two parameters).
/// The states are literals so the planner matches the partial index `jobs_runnable`. The
/// pause check does not refer to `j`, so it runs once (an InitPlan), not per row: as a
/// per-row anti-join its row estimate made generic plans sort the whole backlog.
const CLAIM: &str = "WITH next AS (
        SELECT j.id FROM {t}jobs AS j
        WHERE j.state IN ('pending', 'failed') AND {queue} AND j.run_at <= now()
          AND ($4::text[] IS NULL OR j.kind = ANY($4::text[]))
          AND ({skip}::text[] IS NULL OR coalesce(j.metadata->>'group', '') <> ALL({skip}::text[]))
          AND (j.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM {t}jobs AS o
                WHERE o.queue = j.queue AND o.ordering_key = j.ordering_key
                  AND o.state IN ('pending', 'failed', 'running')
                  AND coalesce(o.ordering_seq, o.id) <= coalesce(j.ordering_seq, j.id)
                  AND (coalesce(o.ordering_seq, o.id) < coalesce(j.ordering_seq, j.id)
                       OR o.id < j.id)))
          AND {not_paused}
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT $5
        FOR UPDATE OF j SKIP LOCKED)
    UPDATE {t}jobs AS u
    SET state = 'running', attempt = u.attempt + 1, lease_owner = $1,
        lease_token = (random() * 9.2e18)::bigint,
        lease_expires_at = now() + $2::bigint * interval '1 microsecond', updated_at = now(),
        started_at = CASE WHEN {hold}::boolean THEN NULL ELSE now() END
    FROM next WHERE u.id = next.id
    RETURNING {columns_u}";

/// A retried job goes to the back of its ordering key's line: a fresh value of the id
/// sequence places it behind every job enqueued or retried before, and makes it look like a new
/// job to concurrent claimers (see migration 3).
const REQUEUE: &str = "ordering_seq = CASE WHEN ordering_key IS NULL THEN NULL
        ELSE nextval(pg_get_serial_sequence('{t}jobs', 'id')) END";

/// The filters of a listing: $1 queue, $2 kind, $3 state (as reported: held jobs are
/// `pending`), $4 before this id, ($5 the limit),
/// $6 last error, $7 payload path (dotted, checked; alone: present), $8 the value there as
/// text (alone: the whole payload).
const LIST_FILTER: &str = "($1::text IS NULL OR j.queue = $1) AND ($2::text IS NULL OR j.kind = $2)
      AND ($3::text IS NULL OR (j.state = $3 AND ($3 <> 'running' OR j.started_at IS NOT NULL))
           OR ($3 = 'pending' AND j.state = 'running' AND j.started_at IS NULL))
      AND ($4::bigint IS NULL OR j.id < $4)
      AND ($6::text IS NULL OR j.last_error = $6)
      AND ($7::text IS NULL OR $8::text IS NOT NULL
           OR j.payload #> string_to_array($7, '.') IS NOT NULL)
      AND ($8::text IS NULL
           OR j.payload #>> coalesce(string_to_array($7, '.'), '{}'::text[]) = $8::text)";

// `ACTIVITY`: the unfinished jobs are counted from the partial index `jobs_active` (an
// index-only scan of them alone; `attempt >= 0` keeps that index away from claims, see
// migration 4); the oldest `run_at` of a group is its oldest runnable job's exactly when it
// has passed (a per-row filter doubled the count's time). The finished states are one seek
// each of `jobs_finished`: under `state IN (...)`, equal to that partial index's own predicate,
// the planner drops the state from the index condition and reads the whole index.

/// The fence of a single-job completion. The batch statements match on the token alone: the
/// table's CHECK keeps a token exactly while the job runs, and a `state` term there would
/// steer the planner to the `leases` index and a nested loop over every running job.
const FENCE: &str = "WHERE id = $1 AND state = 'running' AND lease_token = $2";

impl Sql {
    pub(super) fn new(names: &Names) -> Self {
        let r = |sql: &str| {
            names.render(
                &sql.replace("{columns_u}", &columns("u"))
                    .replace("{columns_j}", &columns("j"))
                    .replace("{columns_read}", &read_columns())
                    .replace("{requeue}", REQUEUE),
            )
        };
        let claim = |queue: &str, not_paused: &str, skip: &str, hold: &str| {
            r(&CLAIM
                .replace("{queue}", queue)
                .replace("{not_paused}", not_paused)
                .replace("{skip}", skip)
                .replace("{hold}", hold))
        };
        Sql {
            insert_one: r(
                "INSERT INTO {t}jobs (queue, kind, payload, priority, run_at, state,
                    max_attempts, idempotency_key, ordering_key, metadata)
                VALUES ($1, $2, $3::jsonb, $4, coalesce($5, now()), 'pending', $6, $7, $8,
                        $9::jsonb)
                ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id",
            ),
            // Rows go in input order (ORDER BY ord), so identity ids rise in input order.
            insert_many: r(
                "INSERT INTO {t}jobs (queue, kind, payload, priority, run_at, state,
                    max_attempts, idempotency_key, ordering_key, metadata)
                SELECT i.queue, i.kind, i.payload::jsonb, i.priority, coalesce(i.run_at, now()),
                       'pending', i.max_attempts, i.idempotency_key, i.ordering_key,
                       i.metadata::jsonb
                FROM UNNEST($1::text[], $2::text[], $3::text[], $4::smallint[],
                            $5::timestamptz[], $6::integer[], $7::text[], $8::text[], $9::text[])
                     WITH ORDINALITY AS i(queue, kind, payload, priority, run_at, max_attempts,
                                          idempotency_key, ordering_key, metadata, ord)
                ORDER BY i.ord
                ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, queue, idempotency_key",
            ),
            ids_by_key: r("SELECT j.id, j.queue, j.idempotency_key FROM {t}jobs AS j
                JOIN UNNEST($1::text[], $2::text[]) AS k(queue, idempotency_key)
                  ON j.queue = k.queue AND j.idempotency_key = k.idempotency_key"),
            claim_one_queue: claim(
                "j.queue = $3::text",
                "NOT EXISTS (SELECT 1 FROM {t}queues AS q WHERE q.name = $3::text AND q.paused)",
                "$6",
                "$7",
            ),
            // $6 priority, $7 run_at, $8 id of the cursor (see `cursor.rs`): an index range
            // from the cursor within its priority, while no higher priority is runnable.
            claim_after_cursor: claim(
                "j.queue = $3::text AND j.priority = $6::smallint
                 AND (j.run_at, j.id) > ($7::timestamptz, $8::bigint)
                 AND NOT EXISTS (SELECT 1 FROM {t}jobs AS h
                     WHERE h.queue = $3::text AND h.state IN ('pending', 'failed')
                       AND h.priority > $6::smallint AND h.run_at <= now())",
                "NOT EXISTS (SELECT 1 FROM {t}queues AS q WHERE q.name = $3::text AND q.paused)",
                "$9",
                "$10",
            ),
            claim_queues: claim(
                "j.queue = ANY($3::text[])",
                "j.queue <> ALL (ARRAY(SELECT q.name FROM {t}queues AS q WHERE q.paused))",
                "$6",
                "$7",
            ),
            // A held job starts: its start recorded, if its lease still holds it. (Only
            // `started_at` changes, which no index covers: a heap-only update.) The commit
            // does not wait for the disk: a start lost in a crash of PostgreSQL leaves the job
            // held, and it is rescued with its attempt unspent.
            start_held: r("UPDATE {t}jobs AS j SET started_at = now()
                FROM UNNEST($1::bigint[], $2::bigint[]) AS l(id, token),
                     (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
                WHERE j.id = l.id AND j.lease_token = l.token AND j.started_at IS NULL
                RETURNING j.id, j.queue, j.state"),
            // A job the worker did not run goes back in its place (`run_at` kept), its attempt
            // not spent; one whose cancel was asked for meanwhile ends cancelled.
            release_held: r("UPDATE {t}jobs AS j SET
                    state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'pending' END,
                    finished_at = CASE WHEN j.cancel_requested THEN now() END,
                    attempt = greatest(j.attempt - 1, 0), lease_token = NULL,
                    lease_expires_at = NULL, started_at = NULL, updated_at = now()
                FROM UNNEST($1::bigint[], $2::bigint[]) AS l(id, token)
                WHERE j.id = l.id AND j.lease_token = l.token
                RETURNING j.id, j.queue, j.state"),
            held_states: r("SELECT id, state FROM {t}jobs WHERE id = ANY($1::bigint[])"),
            extend: r("UPDATE {t}jobs AS j
                SET lease_expires_at = now() + $4::bigint * interval '1 microsecond',
                    updated_at = now()
                FROM UNNEST($1::bigint[], $2::bigint[]) AS l(id, token)
                WHERE j.id = l.id AND j.lease_token = l.token AND j.lease_owner = $3
                RETURNING j.id, j.lease_token, j.cancel_requested"),
            complete: r(&format!(
                "UPDATE {{t}}jobs SET state = 'succeeded', result = $3, lease_token = NULL,
                    lease_expires_at = NULL, finished_at = now(), updated_at = now() {FENCE}"
            )),
            complete_many: r("UPDATE {t}jobs AS j
                SET state = 'succeeded', result = c.result::jsonb, lease_token = NULL,
                    lease_expires_at = NULL, finished_at = now(), updated_at = now()
                FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS c(id, token, result)
                WHERE j.id = c.id AND j.lease_token = c.token
                RETURNING j.id"),
            fail: r(&format!(
                "UPDATE {{t}}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled'
                                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'failed' END,
                    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                                       THEN now() END,
                    run_at = $4, last_error = $3, lease_token = NULL, lease_expires_at = NULL,
                    updated_at = now() {FENCE}
                RETURNING state"
            )),
            dead: r(&format!(
                "UPDATE {{t}}jobs SET state = 'dead', last_error = $3, lease_token = NULL,
                    lease_expires_at = NULL, finished_at = now(), updated_at = now() {FENCE}"
            )),
            record_attempt: r(&format!(
                "UPDATE {{t}}jobs SET metadata = jsonb_set(metadata, '{{attempts}}',
                    coalesce(metadata -> 'attempts', '[]'::jsonb) || jsonb_build_array($3::jsonb)),
                    updated_at = now() {FENCE}"
            )),
            snooze: r(&format!(
                "UPDATE {{t}}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
                    finished_at = CASE WHEN cancel_requested THEN now() END,
                    attempt = greatest(attempt - 1, 0), run_at = $3, lease_token = NULL,
                    lease_expires_at = NULL, updated_at = now() {FENCE}
                RETURNING state"
            )),
            // A held job (never started) goes back with its attempt unspent.
            rescue: r("UPDATE {t}jobs AS j SET
                    state = CASE WHEN j.cancel_requested THEN 'cancelled'
                                 WHEN j.started_at IS NULL THEN 'pending'
                                 WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'pending' END,
                    attempt = CASE WHEN j.started_at IS NULL THEN greatest(j.attempt - 1, 0)
                                   ELSE j.attempt END,
                    finished_at = CASE WHEN j.cancel_requested
                                         OR (j.attempt >= j.max_attempts
                                             AND j.started_at IS NOT NULL)
                                       THEN now() END,
                    last_error = CASE WHEN j.attempt >= j.max_attempts AND NOT j.cancel_requested
                                       AND j.started_at IS NOT NULL
                        THEN 'lease expired (worker ' || coalesce(j.lease_owner, '?')
                             || ' stopped heartbeating) and no attempts remain'
                        ELSE j.last_error END,
                    lease_token = NULL, lease_expires_at = NULL, updated_at = now(),
                    metadata = j.metadata || jsonb_build_object(
                        'rescues', coalesce((j.metadata->>'rescues')::integer, 0) + 1,
                        'last_rescue', jsonb_build_object('worker', j.lease_owner, 'at', now()))
                FROM (SELECT id FROM {t}jobs
                      WHERE state = 'running' AND lease_expires_at < now()
                      ORDER BY lease_expires_at LIMIT $1
                      FOR UPDATE SKIP LOCKED) AS e
                WHERE j.id = e.id
                RETURNING j.id, j.lease_owner, j.state, j.queue"),
            retry_dead: r(
                "UPDATE {t}jobs SET state = 'pending', attempt = 0, run_at = now(),
                    finished_at = NULL, cancel_requested = false, updated_at = now(), {requeue}
                WHERE id = $1 AND state IN ('dead', 'cancelled')
                RETURNING queue",
            ),
            retry_dead_all: r(
                "UPDATE {t}jobs SET state = 'pending', attempt = 0, run_at = now(),
                    finished_at = NULL, cancel_requested = false, updated_at = now(), {requeue}
                WHERE queue = $1 AND state = 'dead' AND ($2::text IS NULL OR kind = $2)",
            ),
            // A started job is asked to stop; any other, held ones included, ends at once (a
            // held job's attempt is given back: it never ran).
            cancel: r(&"UPDATE {t}jobs SET
                    state = CASE WHEN {started} THEN state ELSE 'cancelled' END,
                    cancel_requested = ({started}) OR cancel_requested,
                    finished_at = CASE WHEN {started} THEN finished_at ELSE now() END,
                    lease_token = CASE WHEN {started} THEN lease_token END,
                    lease_expires_at = CASE WHEN {started} THEN lease_expires_at END,
                    attempt = CASE WHEN state = 'running' AND started_at IS NULL
                                   THEN greatest(attempt - 1, 0) ELSE attempt END,
                    updated_at = now()
                WHERE id = $1 AND state IN ('pending', 'failed', 'running')
                RETURNING state"
                .replace("{started}", "state = 'running' AND started_at IS NOT NULL")),
            set_paused: r(
                "INSERT INTO {t}queues (name, paused, updated_at) VALUES ($1, $2, now())
                ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
                    updated_at = excluded.updated_at",
            ),
            state_of: r("SELECT state FROM {t}jobs WHERE id = $1"),
            stats: r("SELECT queue, state, count(*) AS n,
                    (extract(epoch FROM now() - min(run_at)
                        FILTER (WHERE state IN ('pending', 'failed') AND run_at <= now()))
                     * 1000000)::bigint AS oldest_age_us
                FROM {t}jobs GROUP BY queue, state
                UNION ALL
                SELECT queue, 'held', count(*), NULL FROM {t}jobs
                WHERE state = 'running' AND started_at IS NULL GROUP BY queue"),
            // See `ACTIVITY`.
            activity: r("SELECT queue, state, count(*) AS n,
                    (extract(epoch FROM now() - min(run_at)) * 1000000)::bigint AS oldest_age_us,
                    0::bigint AS recent
                FROM {t}jobs
                WHERE state IN ('pending', 'failed', 'running') AND attempt >= 0
                GROUP BY queue, state
                UNION ALL
                SELECT queue, 'succeeded', count(*) FILTER (WHERE finished_at < $2), NULL,
                    count(*) FILTER (WHERE finished_at >= $2)
                FROM {t}jobs WHERE state = 'succeeded' AND finished_at >= $1 GROUP BY queue
                UNION ALL
                SELECT queue, 'dead', count(*) FILTER (WHERE finished_at < $2), NULL,
                    count(*) FILTER (WHERE finished_at >= $2)
                FROM {t}jobs WHERE state = 'dead' AND finished_at >= $1 GROUP BY queue
                UNION ALL
                SELECT queue, 'cancelled', count(*) FILTER (WHERE finished_at < $2), NULL,
                    count(*) FILTER (WHERE finished_at >= $2)
                FROM {t}jobs WHERE state = 'cancelled' AND finished_at >= $1 GROUP BY queue
                UNION ALL
                SELECT queue, 'held', count(*), NULL, 0 FROM {t}jobs
                WHERE state = 'running' AND started_at IS NULL GROUP BY queue"),
            paused_queues: r("SELECT name, paused FROM {t}queues"),
            delete_finished: r("DELETE FROM {t}jobs WHERE id IN (
                    (SELECT id FROM {t}jobs WHERE state = 'succeeded'
                        AND finished_at < now() - $1::bigint * interval '1 microsecond' LIMIT $3)
                    UNION ALL
                    (SELECT id FROM {t}jobs WHERE state IN ('dead', 'cancelled')
                        AND finished_at < now() - $2::bigint * interval '1 microsecond' LIMIT $3)
                    LIMIT $3)"),
            job: r("SELECT {columns_read} FROM {t}jobs AS j WHERE j.id = $1"),
            list: r(&format!(
                "SELECT {{columns_read}} FROM {{t}}jobs AS j WHERE {LIST_FILTER}
                ORDER BY j.id DESC LIMIT $5"
            )),
            count: r(&format!(
                "SELECT count(*) AS count FROM {{t}}jobs AS j WHERE {LIST_FILTER} AND $5 >= 0"
            )),
            failure_groups: r("SELECT queue, kind, last_error AS error, count(*) AS count,
                    min(updated_at) AS first_seen, max(updated_at) AS last_seen
                FROM {t}jobs
                WHERE state IN ('failed', 'dead') AND last_error IS NOT NULL
                  AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)
                GROUP BY queue, kind, last_error
                ORDER BY count(*) DESC, max(updated_at) DESC LIMIT $3"),
            recent_waits: r("SELECT greatest(0, (extract(epoch FROM started_at - run_at)
                    * 1000000)::bigint) AS wait
                FROM {t}jobs
                WHERE state = 'succeeded' AND finished_at >= $1 AND started_at IS NOT NULL
                ORDER BY finished_at DESC LIMIT $2"),
            notify: r("SELECT pg_notify('{channel}', $1)"),
            running_of_kind: r(
                "SELECT count(*) FROM {t}jobs WHERE state = 'running' AND kind = $1",
            ),
            inbox_record: r(
                "INSERT INTO {t}inbox (consumer, message_key) VALUES ($1, $2)
                ON CONFLICT (consumer, message_key) DO NOTHING",
            ),
            inbox_delete: r(
                "DELETE FROM {t}inbox WHERE ctid IN (SELECT ctid FROM {t}inbox
                WHERE processed_at < now() - $1::bigint * interval '1 microsecond' LIMIT $2)",
            ),
            leader_acquire: r("INSERT INTO {t}leaders (name, holder, expires_at)
                VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                    expires_at = excluded.expires_at,
                    acquired_at = CASE WHEN {t}leaders.holder = excluded.holder
                        THEN {t}leaders.acquired_at ELSE now() END
                WHERE {t}leaders.holder = excluded.holder OR {t}leaders.expires_at < now()
                RETURNING holder"),
            leader_release: r("DELETE FROM {t}leaders WHERE name = $1 AND holder = $2"),
            pause_group: r("INSERT INTO {t}paused_groups (name, reason) VALUES ($1, $2)
                ON CONFLICT (name) DO UPDATE SET reason = excluded.reason"),
            resume_group: r("DELETE FROM {t}paused_groups WHERE name = $1"),
            paused_groups: r("SELECT name, reason, paused_at FROM {t}paused_groups ORDER BY name"),
        }
    }
}
