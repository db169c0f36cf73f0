//! The SQLite statements, rendered once per store with its table prefix.

use crate::store::migrate::Names;

/// Columns of a job, in the order `job_from_row` reads them.
pub(super) const COLUMNS: &str = "id, queue, kind, payload, priority, run_at, state, attempt, \
    max_attempts, lease_owner, lease_token, lease_expires_at, cancel_requested, \
    idempotency_key, ordering_key, last_error, result, created_at, updated_at, finished_at, \
    started_at, metadata";

/// [`COLUMNS`] for readers: a held job (claimed ahead, leased, not started) is `pending` (see
/// `Claim::hold`).
const READ_COLUMNS: &str = "id, queue, kind, payload, priority, run_at, \
    CASE WHEN state = 'running' AND started_at IS NULL THEN 'pending' ELSE state END AS state, \
    attempt, max_attempts, lease_owner, lease_token, lease_expires_at, cancel_requested, \
    idempotency_key, ordering_key, last_error, result, created_at, updated_at, finished_at, \
    started_at, metadata";

#[derive(Debug)]
pub(super) struct Sql {
    pub(super) insert: String,
    pub(super) ids_by_key: String,
    pub(super) claim_one_queue: String,
    pub(super) claim_queues: String,
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
    pub(super) running_of_kind: String,
    pub(super) inbox_record: String,
    pub(super) inbox_delete: String,
    pub(super) leader_acquire: String,
    pub(super) leader_release: String,
    pub(super) pause_group: String,
    pub(super) resume_group: String,
    pub(super) paused_groups: String,
}

/// The claim's candidate filter; `{queue}` is the queue condition; ?8 whether the jobs are
/// held, not started (`Claim::hold`).
const CLAIM: &str = "UPDATE {t}jobs
    SET state = 'running', attempt = attempt + 1, lease_owner = ?1, lease_token = random(),
        lease_expires_at = ?2, updated_at = ?3, started_at = CASE WHEN ?8 THEN NULL ELSE ?3 END
    WHERE id IN (
        SELECT j.id FROM {t}jobs AS j
        WHERE j.state IN ('pending', 'failed') AND {queue} AND j.run_at <= ?3
          AND (?5 IS NULL OR j.kind IN (SELECT value FROM json_each(?5)))
          AND (?7 IS NULL OR coalesce(json_extract(j.metadata, '$.group'), '')
               NOT IN (SELECT value FROM json_each(?7)))
          AND (j.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM {t}jobs AS o
                WHERE o.queue = j.queue AND o.ordering_key = j.ordering_key
                  AND o.state IN ('pending', 'failed', 'running')
                  AND coalesce(o.ordering_seq, o.id) <= coalesce(j.ordering_seq, j.id)
                  AND (coalesce(o.ordering_seq, o.id) < coalesce(j.ordering_seq, j.id)
                       OR o.id < j.id)))
          AND NOT EXISTS (SELECT 1 FROM {t}queues AS q WHERE q.name = j.queue AND q.paused)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT ?6)
    RETURNING {columns}";

/// A retried job goes to the back of its ordering key's line: behind every job enqueued
/// before the retry (one writer at a time, so the next rowid is `max(id) + 1`).
const REQUEUE: &str = "ordering_seq = CASE WHEN ordering_key IS NULL THEN NULL
        ELSE (SELECT max(id) FROM {t}jobs) + 1 END";

/// The filters of a listing: ?1 queue, ?2 kind, ?3 state (as reported: held jobs are
/// `pending`), ?4 before this id, (?5 the limit),
/// ?6 last error, ?7 payload path (dotted, checked: plain keys; alone: present), ?8 the value
/// there as text (alone: the whole payload).
const LIST_FILTER: &str = "(?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR kind = ?2)
      AND (?3 IS NULL OR (state = ?3 AND (?3 <> 'running' OR started_at IS NOT NULL))
           OR (?3 = 'pending' AND state = 'running' AND started_at IS NULL))
      AND (?4 IS NULL OR id < ?4)
      AND (?6 IS NULL OR last_error = ?6)
      AND (?7 IS NULL OR ?8 IS NOT NULL OR json_type(payload, '$.' || ?7) IS NOT NULL)
      AND (?8 IS NULL
           OR CAST(json_extract(payload, coalesce('$.' || ?7, '$')) AS TEXT) = ?8)";

/// The queues that have jobs, one index seek each (a loose index scan of `jobs_listing`): the
/// activity count then counts each queue's unfinished jobs per state with one (queue, state)
/// range of the same index (a scalar subquery each, so that the planner cannot make it a scan
/// of the table), and never reads the finished history (a partial index of the unfinished jobs
/// would be simpler, but costs every claim and completion a tenth of its rate in upkeep). The
/// oldest `run_at` of a queue's pending and failed jobs, the first of each priority in
/// `jobs_runnable` (ten seeks), is its oldest runnable job's exactly when it has passed; the
/// caller compares. The finished jobs since the last count come from `jobs_finished`, named:
/// for the `GROUP BY` the planner preferred a scan of the whole `jobs_listing`.
const ACTIVITY_QUEUES: &str = "WITH RECURSIVE q(name) AS (
        SELECT (SELECT min(queue) FROM {t}jobs)
        UNION ALL
        SELECT (SELECT min(queue) FROM {t}jobs WHERE queue > q.name)
        FROM q WHERE q.name IS NOT NULL)";

/// The fencing condition every completion carries.
const FENCE: &str = "WHERE id = ?1 AND state = 'running' AND lease_token = ?2";

impl Sql {
    pub(super) fn new(names: &Names) -> Self {
        let r = |sql: &str| {
            names.render(
                &sql.replace("{read_columns}", READ_COLUMNS)
                    .replace("{columns}", COLUMNS)
                    .replace("{requeue}", REQUEUE),
            )
        };
        let claim = |queue: &str| r(&CLAIM.replace("{queue}", queue));
        Sql {
            // The whole batch is one JSON array bound once: one statement however many jobs.
            // Rows go in array order (ORDER BY key), so rowids rise in input order.
            insert: r(
                "INSERT INTO {t}jobs (queue, kind, payload, priority, run_at, state,
                    max_attempts, idempotency_key, ordering_key, metadata, created_at, updated_at)
                SELECT json_extract(value, '$.q'), json_extract(value, '$.k'),
                       json_extract(value, '$.p'), json_extract(value, '$.pr'),
                       coalesce(json_extract(value, '$.r'), ?2), 'pending',
                       json_extract(value, '$.m'), json_extract(value, '$.i'),
                       json_extract(value, '$.o'), json_extract(value, '$.md'), ?2, ?2
                FROM json_each(?1) WHERE true ORDER BY key
                ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, queue, idempotency_key",
            ),
            ids_by_key: r("SELECT j.id, j.queue, j.idempotency_key FROM {t}jobs AS j
                JOIN (SELECT json_extract(value, '$[0]') AS q, json_extract(value, '$[1]') AS k
                      FROM json_each(?1)) AS wanted
                  ON j.queue = wanted.q AND j.idempotency_key = wanted.k"),
            claim_one_queue: claim("j.queue = ?4"),
            claim_queues: claim("j.queue IN (SELECT value FROM json_each(?4))"),
            // A held job starts: its start recorded, if its lease still holds it.
            start_held: r("UPDATE {t}jobs SET started_at = ?2
                FROM (SELECT json_extract(value, '$[0]') AS lid,
                             json_extract(value, '$[1]') AS ltoken FROM json_each(?1)) AS l
                WHERE {t}jobs.id = l.lid AND {t}jobs.lease_token = l.ltoken
                  AND {t}jobs.started_at IS NULL
                RETURNING id, queue, state"),
            // A job the worker did not run goes back in its place (`run_at` kept), its attempt
            // not spent; one whose cancel was asked for meanwhile ends cancelled.
            release_held: r("UPDATE {t}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
                    finished_at = CASE WHEN cancel_requested THEN ?2 END,
                    attempt = max(attempt - 1, 0), lease_token = NULL, lease_expires_at = NULL,
                    started_at = NULL, updated_at = ?2
                FROM (SELECT json_extract(value, '$[0]') AS lid,
                             json_extract(value, '$[1]') AS ltoken FROM json_each(?1)) AS l
                WHERE {t}jobs.id = l.lid AND {t}jobs.lease_token = l.ltoken
                RETURNING id, queue, state"),
            held_states: r("SELECT id, state FROM {t}jobs
                WHERE id IN (SELECT value FROM json_each(?1))"),
            extend: r("UPDATE {t}jobs SET lease_expires_at = ?3, updated_at = ?4
                FROM (SELECT json_extract(value, '$[0]') AS lid,
                             json_extract(value, '$[1]') AS ltoken FROM json_each(?1)) AS l
                WHERE {t}jobs.id = l.lid AND {t}jobs.lease_token = l.ltoken
                  AND {t}jobs.lease_owner = ?2
                RETURNING id, lease_token, cancel_requested"),
            complete_many: r("UPDATE {t}jobs SET state = 'succeeded', result = c.cresult,
                    lease_token = NULL, lease_expires_at = NULL, finished_at = ?2, updated_at = ?2
                FROM (SELECT json_extract(value, '$[0]') AS cid,
                             json_extract(value, '$[1]') AS ctoken,
                             json_extract(value, '$[2]') AS cresult FROM json_each(?1)) AS c
                WHERE {t}jobs.id = c.cid AND {t}jobs.lease_token = c.ctoken
                RETURNING id"),
            complete: r(&format!(
                "UPDATE {{t}}jobs SET state = 'succeeded', result = ?3, lease_token = NULL,
                    lease_expires_at = NULL, finished_at = ?4, updated_at = ?4 {FENCE}
                RETURNING id"
            )),
            fail: r(&format!(
                "UPDATE {{t}}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled'
                                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'failed' END,
                    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                                       THEN ?5 END,
                    run_at = ?4, last_error = ?3, lease_token = NULL, lease_expires_at = NULL,
                    updated_at = ?5 {FENCE}
                RETURNING state"
            )),
            dead: r(&format!(
                "UPDATE {{t}}jobs SET state = 'dead', last_error = ?3, lease_token = NULL,
                    lease_expires_at = NULL, finished_at = ?4, updated_at = ?4 {FENCE}
                RETURNING id"
            )),
            record_attempt: r(&format!(
                "UPDATE {{t}}jobs SET metadata = json_set(metadata, '$.attempts',
                    json_insert(coalesce(json_extract(metadata, '$.attempts'), json('[]')),
                        '$[#]', json(?3))), updated_at = ?4 {FENCE}
                RETURNING id"
            )),
            snooze: r(&format!(
                "UPDATE {{t}}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
                    finished_at = CASE WHEN cancel_requested THEN ?4 END,
                    attempt = max(attempt - 1, 0), run_at = ?3, lease_token = NULL,
                    lease_expires_at = NULL, updated_at = ?4 {FENCE}
                RETURNING state"
            )),
            // A held job (never started) goes back with its attempt unspent.
            rescue: r("UPDATE {t}jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled'
                                 WHEN started_at IS NULL THEN 'pending'
                                 WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
                    attempt = CASE WHEN started_at IS NULL THEN max(attempt - 1, 0)
                                   ELSE attempt END,
                    finished_at = CASE WHEN cancel_requested
                                         OR (attempt >= max_attempts AND started_at IS NOT NULL)
                                       THEN ?1 END,
                    last_error = CASE WHEN attempt >= max_attempts AND NOT cancel_requested
                                       AND started_at IS NOT NULL
                        THEN 'lease expired (worker ' || coalesce(lease_owner, '?')
                             || ' stopped heartbeating) and no attempts remain'
                        ELSE last_error END,
                    lease_token = NULL, lease_expires_at = NULL, updated_at = ?1,
                    metadata = json_set(metadata,
                        '$.rescues', coalesce(json_extract(metadata, '$.rescues'), 0) + 1,
                        '$.last_rescue', json_object('worker', lease_owner, 'at', ?2))
                WHERE id IN (SELECT id FROM {t}jobs
                             WHERE state = 'running' AND lease_expires_at < ?1
                             ORDER BY lease_expires_at LIMIT ?3)
                RETURNING id, lease_owner, state, queue"),
            retry_dead: r(
                "UPDATE {t}jobs SET state = 'pending', attempt = 0, run_at = ?2,
                    finished_at = NULL, cancel_requested = 0, updated_at = ?2, {requeue}
                WHERE id = ?1 AND state IN ('dead', 'cancelled')
                RETURNING queue",
            ),
            retry_dead_all: r(
                "UPDATE {t}jobs SET state = 'pending', attempt = 0, run_at = ?3,
                    finished_at = NULL, cancel_requested = 0, updated_at = ?3, {requeue}
                WHERE queue = ?1 AND state = 'dead' AND (?2 IS NULL OR kind = ?2)",
            ),
            // A started job is asked to stop; any other, held ones included, ends at once (a
            // held job's attempt is given back: it never ran).
            cancel: r(&"UPDATE {t}jobs SET
                    state = CASE WHEN {started} THEN state ELSE 'cancelled' END,
                    cancel_requested = CASE WHEN {started} THEN 1 ELSE cancel_requested END,
                    finished_at = CASE WHEN {started} THEN finished_at ELSE ?2 END,
                    lease_token = CASE WHEN {started} THEN lease_token END,
                    lease_expires_at = CASE WHEN {started} THEN lease_expires_at END,
                    attempt = CASE WHEN state = 'running' AND started_at IS NULL
                                   THEN max(attempt - 1, 0) ELSE attempt END,
                    updated_at = ?2
                WHERE id = ?1 AND state IN ('pending', 'failed', 'running')
                RETURNING state"
                .replace("{started}", "state = 'running' AND started_at IS NOT NULL")),
            set_paused: r(
                "INSERT INTO {t}queues (name, paused, updated_at) VALUES (?1, ?2, ?3)
                ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
                    updated_at = excluded.updated_at",
            ),
            state_of: r("SELECT state FROM {t}jobs WHERE id = ?1"),
            stats: r("SELECT queue, state, count(*) AS n,
                    min(CASE WHEN state IN ('pending', 'failed') AND run_at <= ?1 THEN run_at END)
                        AS oldest
                FROM {t}jobs GROUP BY queue, state
                UNION ALL
                SELECT queue, 'held', count(*), NULL FROM {t}jobs
                WHERE state = 'running' AND started_at IS NULL GROUP BY queue"),
            // See `ACTIVITY_QUEUES`.
            activity: r(&format!(
                "{ACTIVITY_QUEUES}
                SELECT q.name AS queue, s.state AS state,
                    (SELECT count(*) FROM {{t}}jobs AS j
                     WHERE j.queue = q.name AND j.state = s.state) AS n,
                    CASE WHEN s.state = 'pending' THEN (
                        SELECT min((SELECT o.run_at FROM {{t}}jobs AS o
                                    WHERE o.queue = q.name AND o.state IN ('pending', 'failed')
                                      AND o.priority = p.value
                                    ORDER BY o.run_at LIMIT 1))
                        FROM json_each('[1,2,3,4,5,6,7,8,9,10]') AS p)
                    END AS oldest, 0 AS recent
                FROM q, (SELECT 'pending' AS state UNION ALL SELECT 'failed'
                         UNION ALL SELECT 'running') AS s
                WHERE q.name IS NOT NULL
                UNION ALL
                SELECT q.name, 'held', (SELECT count(*) FROM {{t}}jobs AS j
                     WHERE j.queue = q.name AND j.state = 'running' AND j.started_at IS NULL),
                    NULL, 0
                FROM q WHERE q.name IS NOT NULL
                UNION ALL
                SELECT queue, state, sum(finished_at < ?2), NULL, sum(finished_at >= ?2)
                FROM {{t}}jobs INDEXED BY {{t}}jobs_finished
                WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at >= ?1
                GROUP BY queue, state"
            )),
            paused_queues: r("SELECT name, paused FROM {t}queues"),
            delete_finished: r("DELETE FROM {t}jobs WHERE id IN (
                    SELECT id FROM {t}jobs WHERE state = 'succeeded' AND finished_at < ?1
                    UNION ALL
                    SELECT id FROM {t}jobs WHERE state IN ('dead', 'cancelled')
                        AND finished_at < ?2
                    LIMIT ?3)"),
            job: r("SELECT {read_columns} FROM {t}jobs WHERE id = ?1"),
            list: r(&format!(
                "SELECT {{read_columns}} FROM {{t}}jobs WHERE {LIST_FILTER} ORDER BY id DESC LIMIT ?5"
            )),
            count: r(&format!(
                "SELECT count(*) AS count FROM {{t}}jobs WHERE {LIST_FILTER} AND ?5 >= 0"
            )),
            failure_groups: r("SELECT queue, kind, last_error AS error, count(*) AS count,
                    min(updated_at) AS first_seen, max(updated_at) AS last_seen
                FROM {t}jobs
                WHERE state IN ('failed', 'dead') AND last_error IS NOT NULL
                  AND (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR kind = ?2)
                GROUP BY queue, kind, last_error
                ORDER BY count(*) DESC, max(updated_at) DESC LIMIT ?3"),
            recent_waits: r("SELECT max(0, started_at - run_at) AS wait FROM {t}jobs
                WHERE state = 'succeeded' AND finished_at >= ?1 AND started_at IS NOT NULL
                  AND state IN ('succeeded', 'dead', 'cancelled')
                ORDER BY finished_at DESC LIMIT ?2"),
            running_of_kind: r(
                "SELECT count(*) FROM {t}jobs WHERE state = 'running' AND kind = ?1",
            ),
            inbox_record: r("INSERT INTO {t}inbox (consumer, message_key, processed_at)
                VALUES (?1, ?2, ?3) ON CONFLICT (consumer, message_key) DO NOTHING"),
            inbox_delete: r("DELETE FROM {t}inbox WHERE (consumer, message_key) IN (
                SELECT consumer, message_key FROM {t}inbox WHERE processed_at < ?1 LIMIT ?2)"),
            leader_acquire: r(
                "INSERT INTO {t}leaders (name, holder, expires_at, acquired_at)
                VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                    expires_at = excluded.expires_at,
                    acquired_at = CASE WHEN {t}leaders.holder = excluded.holder
                        THEN {t}leaders.acquired_at ELSE excluded.acquired_at END
                WHERE {t}leaders.holder = excluded.holder OR {t}leaders.expires_at < ?4
                RETURNING holder",
            ),
            leader_release: r("DELETE FROM {t}leaders WHERE name = ?1 AND holder = ?2"),
            pause_group: r(
                "INSERT INTO {t}paused_groups (name, reason, paused_at) VALUES (?1, ?2, ?3)
                ON CONFLICT (name) DO UPDATE SET reason = excluded.reason",
            ),
            resume_group: r("DELETE FROM {t}paused_groups WHERE name = ?1"),
            paused_groups: r("SELECT name, reason, paused_at FROM {t}paused_groups ORDER BY name"),
        }
    }
}
