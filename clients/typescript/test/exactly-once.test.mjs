// 2,000 jobs through two worker processes, each job's effect applied exactly once: every
// handler inserts its job's id into a ledger whose key is the job id (PostgreSQL, a schema of
// this test's own), so a job run twice would hit a unique violation. The server must count
// 2,000 succeeded, the ledger 2,000 rows, and neither worker a duplicate.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Floodgate } from "../dist/index.js";
import { exitOf, spawnWorker } from "./helpers/processes.mjs";
import { postgresFor } from "./helpers/postgres.mjs";
import { eventually, startServer } from "./helpers/server.mjs";

const JOBS = 2_000;

test("2,000 jobs through two worker processes: each effect applied exactly once", async (t) => {
  const db = await postgresFor(t);
  if (db === undefined) return;
  await db.pool.query(`CREATE TABLE ${db.schema}.ledger (job_id bigint PRIMARY KEY, worker text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
  const server = await startServer();
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url });
  const queue = "ledger";

  const base = { server: server.url, queue, mode: "ledger", concurrency: 16, leaseTtl: 30, shutdownTimeoutMs: 10_000, databaseUrl: db.url, schema: db.schema };
  const workers = ["one", "two"].map((name) => spawnWorker({ ...base, name }));
  for (const w of workers) t.after(() => w.kill());
  for (const w of workers) await w.waitFor((events) => events.some((e) => e.event === "ready"), "ready");

  for (let i = 0; i < JOBS; i += 1_000) {
    await client.enqueueMany(Array.from({ length: 1_000 }, (_, j) => ({ kind: "task", queue, payload: { n: i + j } })), { idempotencyKey: `ledger-${i}` });
  }
  const count = async (state) => {
    const res = await fetch(`${server.url}/v1/jobs/count?queue=${queue}&state=${state}`);
    return /** @type {{ count: number }} */ (await res.json()).count;
  };
  await eventually(async () => (await count("succeeded")) === JOBS, { what: `${JOBS} jobs succeeded`, timeoutMs: 180_000, intervalMs: 250 });

  for (const w of workers) w.child.kill("SIGTERM");
  const closed = [];
  for (const w of workers) {
    assert.deepEqual(await exitOf(w), { code: 0, signal: null }, w.output());
    closed.push(w.named("closed")[0]);
  }
  assert.equal(closed[0].duplicates + closed[1].duplicates, 0, "no unique violation");
  assert.equal(closed[0].stats.succeeded + closed[1].stats.succeeded, JOBS);
  assert.ok(closed.every((c) => c.stats.succeeded > 0), `both workers worked: ${closed.map((c) => c.stats.succeeded)}`);
  for (const c of closed) {
    assert.deepEqual({ lost: c.stats.lost, errors: c.stats.errors, failed: c.stats.failed }, { lost: 0, errors: 0, failed: 0 });
  }

  const { rows } = await db.pool.query(`SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS distinct_ids, count(DISTINCT worker)::int AS workers FROM ${db.schema}.ledger`);
  assert.deepEqual(rows[0], { n: JOBS, distinct_ids: JOBS, workers: 2 });
  assert.equal(await count("succeeded"), JOBS);
  for (const state of ["dead", "failed", "pending", "running"]) assert.equal(await count(state), 0, state);
});
