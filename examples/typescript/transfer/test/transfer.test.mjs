// @ts-check
// The transfer example end to end, against the real floodgate binary and PostgreSQL: the
// service (server.mjs) and workers (worker.mjs) run as child processes on a schema of this
// test's own. 200 concurrent transfers go in; the worker is killed with SIGKILL in the middle
// of its transactions and a new one started; every transfer must end confirmed or failed with
// its effect applied exactly once, and every job succeeded. A POST whose transaction fails
// after the enqueue must leave neither the transfer nor its job.

import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { Floodgate, FloodgateError } from "@floodgate/client";

import { applyTransfer } from "../apply.mjs";
import { createTransfer } from "../outbox.mjs";
import { eventually, start, stop } from "./helpers/processes.mjs";
import { childEnv, exampleDir, probePostgres, servicesRequired, startFloodgate, withSearchPath } from "./helpers/services.mjs";

const ACCOUNTS = 20;
const START_BALANCE = 1_000;
const TRANSFERS = 200;
/** More than all the money there is: such a transfer always fails (every 40th one). */
const OVERDRAW = 1_000_000;
/** The worker is killed once this many transfers are done (of 200; each takes ≥ 100 ms). */
const KILL_AFTER = 10;

const postgres = await probePostgres();
const skip = postgres.reason !== undefined && !servicesRequired ? `skipped: ${postgres.reason}; set FLOODGATE_REQUIRE_SERVICES=1 to fail instead` : false;
if (skip) console.log(skip);

describe("transfer example: outbox and inbox against floodgate serve and PostgreSQL", { skip }, () => {
  /** @type {pg.Pool | undefined} */
  let admin;
  /** @type {pg.Pool} */
  let db;
  /** @type {string} */
  let schema;
  /** @type {Awaited<ReturnType<typeof startFloodgate>> | undefined} */
  let floodgate;
  /** @type {Floodgate} */
  let client;
  /** @type {import("./helpers/processes.mjs").Started | undefined} */
  let server;
  /** @type {import("./helpers/processes.mjs").Started[]} */
  const workers = [];
  /** @type {string} */
  let appUrl;
  /** @type {Record<string, string>} */
  let appEnv;

  before(async () => {
    if (postgres.url === undefined) {
      throw new Error(`PostgreSQL is required (FLOODGATE_REQUIRE_SERVICES=${process.env.FLOODGATE_REQUIRE_SERVICES}): ${postgres.reason}`);
    }
    schema = `transfer_test_${process.pid}_${randomBytes(4).toString("hex")}`;
    admin = new pg.Pool({ connectionString: postgres.url, max: 2 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    floodgate = await startFloodgate({ databaseUrl: postgres.url, schema });
    client = new Floodgate({ baseUrl: floodgate.url });
    const appDatabaseUrl = withSearchPath(postgres.url, schema);
    // A 4 s lease: the jobs of the killed worker are rescued at the server's next rescue
    // (every second here: `rescue_interval`) after it ran out. 100 ms of work inside each
    // transaction: the kill lands in the middle of open transactions.
    appEnv = { DATABASE_URL: appDatabaseUrl, FLOODGATE_URL: floodgate.url, PORT: "0", WORKER_LEASE_TTL: "4", TRANSFER_WORK_MS: "100" };
    server = start("server.mjs", process.execPath, ["server.mjs"], { cwd: exampleDir, env: childEnv(appEnv) });
    appUrl = (await server.waitForOutput(/listening on (http:\/\/\S+)/))[1];
    db = new pg.Pool({ connectionString: appDatabaseUrl, max: 4 });
    await db.query(
      "INSERT INTO accounts (id, balance) SELECT 'acct-' || lpad(i::text, 2, '0'), $1 FROM generate_series(0, $2 - 1) AS i",
      [START_BALANCE, ACCOUNTS],
    );
  });

  after(async () => {
    const steps = [
      ...workers.map((w) => () => w.kill("SIGKILL")),
      () => server?.kill("SIGKILL"),
      () => floodgate?.stop(),
      () => db?.end(),
      () => admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
      () => admin?.end(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        console.error("cleanup:", error);
      }
    }
  });

  /** POST /transfers with `body` (JSON unless a string); the status, headers and parsed body. */
  async function post(/** @type {unknown} */ body, contentType = "application/json") {
    const res = await fetch(`${appUrl}/transfers`, {
      method: "POST",
      headers: { "content-type": contentType },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: await res.json() };
  }

  /** GET a path of the service; the status, headers and parsed body. */
  async function get(/** @type {string} */ path, method = "GET") {
    const res = await fetch(`${appUrl}${path}`, { method });
    return { status: res.status, headers: res.headers, body: await res.json() };
  }

  /** Jobs of kind `transfer` in `state` (any state when omitted), as the floodgate server counts. */
  async function countJobs(/** @type {string | undefined} */ state) {
    const res = await fetch(`${floodgate?.url}/v1/jobs/count?kind=transfer${state ? `&state=${state}` : ""}`);
    assert.equal(res.status, 200);
    return /** @type {{ count: number }} */ (await res.json()).count;
  }

  /** One number from the database. */
  async function scalar(/** @type {string} */ sql, /** @type {unknown[]} */ params = []) {
    return Number((await db.query(sql, params)).rows[0].n);
  }

  function startWorker(/** @type {string} */ label) {
    const worker = start(`worker ${label}`, process.execPath, ["worker.mjs"], { cwd: exampleDir, env: childEnv(appEnv) });
    workers.push(worker);
    return worker;
  }

  /** Asserts an RFC 9457 problem answer with `status` and `code`. */
  function assertProblem(/** @type {{ status: number, headers: Headers, body: any }} */ answer, /** @type {number} */ status, /** @type {string} */ code) {
    const shown = JSON.stringify(answer.body);
    assert.equal(answer.status, status, shown);
    assert.equal(answer.headers.get("content-type"), "application/problem+json");
    assert.equal(answer.body.status, status, shown);
    assert.equal(answer.body.code, code, shown);
    for (const member of ["type", "title", "detail"]) assert.equal(typeof answer.body[member], "string", `${member} in ${shown}`);
  }

  test("bad requests get RFC 9457 problem documents and change nothing", async () => {
    assertProblem(await post("{not json"), 400, "INVALID_JSON");
    const missing = await post({ from: "acct-00" });
    assertProblem(missing, 400, "VALIDATION_FAILED");
    assert.deepEqual(missing.body.errors.map((/** @type {{ field: string }} */ e) => e.field).sort(), ["amount", "to"]);
    const bad = await post({ from: "acct-00", to: "acct-00", amount: 1.5, memo: "x" });
    assertProblem(bad, 400, "VALIDATION_FAILED");
    assert.deepEqual(bad.body.errors.map((/** @type {{ field: string }} */ e) => e.field).sort(), ["amount", "memo", "to"]);
    assertProblem(await post({ from: "acct-00", to: "acct-01", amount: -5 }), 400, "VALIDATION_FAILED");
    assertProblem(await post(["acct-00", "acct-01", 5]), 400, "VALIDATION_FAILED");
    assertProblem(await post('{"from":"acct-00","to":"acct-01","amount":5}', "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE");
    assertProblem(await get("/transfers/424242"), 404, "NOT_FOUND");
    assertProblem(await get("/transfers/abc"), 404, "NOT_FOUND");
    assertProblem(await get("/accounts"), 404, "NOT_FOUND");
    const notAllowed = await get("/transfers", "GET");
    assertProblem(notAllowed, 405, "METHOD_NOT_ALLOWED");
    assert.equal(notAllowed.headers.get("allow"), "POST");

    assert.equal(await scalar("SELECT count(*) AS n FROM transfers"), 0);
    assert.equal(await countJobs(undefined), 0);
  });

  test("a transaction that fails after the enqueue keeps neither the transfer nor its job", async () => {
    const first = await post({ from: "acct-00", to: "acct-01", amount: 1 });
    assert.equal(first.status, 202, JSON.stringify(first.body));

    // The account references are checked at COMMIT, after floodgate_enqueue() has run.
    const ghost = await post({ from: "acct-00", to: "ghost", amount: 1 });
    assertProblem(ghost, 422, "UNKNOWN_ACCOUNT");
    assert.deepEqual(ghost.body.errors, [{ field: "to", message: "no such account" }]);

    const second = await post({ from: "acct-01", to: "acct-00", amount: 1 });
    assert.equal(second.status, 202, JSON.stringify(second.body));

    // The failed transaction did insert a transfer and enqueue a job (each took the next id
    // of its sequence; nothing else takes ids meanwhile), and kept neither.
    assert.equal(second.body.id, first.body.id + 2, "the failed POST inserted a transfer row");
    assert.equal(second.body.job_id, first.body.job_id + 2, "the failed POST enqueued a job");
    const lostTransfer = first.body.id + 1;
    const lostJob = first.body.job_id + 1;
    assert.equal(await scalar("SELECT count(*) AS n FROM transfers WHERE id = $1 OR to_account = 'ghost'", [lostTransfer]), 0);
    assertProblem(await get(`/transfers/${lostTransfer}`), 404, "NOT_FOUND");
    await assert.rejects(client.get(lostJob), (error) => error instanceof FloodgateError && error.code === "NOT_FOUND");
    assert.equal((await client.list({ kind: "transfer", path: "to", value: "ghost" })).jobs.length, 0);
    assert.equal(await countJobs(undefined), 2);

    // The two that committed: row and job both, the job waiting for a worker (none runs yet).
    for (const answer of [first, second]) {
      const job = await client.get(answer.body.job_id);
      assert.equal(job.state, "pending");
      assert.equal(job.idempotency_key, `transfer:${answer.body.id}`);
      assert.deepEqual(job.payload, { transfer_id: answer.body.id, ...(answer === first ? { from: "acct-00", to: "acct-01" } : { from: "acct-01", to: "acct-00" }), amount: 1 });
      const shown = await get(answer.body.status_url);
      assert.equal(shown.status, 200);
      assert.equal(shown.body.status, "pending");
      assert.equal(shown.body.job_state, "pending");
    }
  });

  test("a job delivered twice at once moves the money once", async () => {
    // Two deliveries of the same job overlapping (a lease lost under a slow worker, say): the
    // second waits on the inbox row's key until the first commits, then changes nothing.
    const balances = async () => (await db.query("SELECT id, balance::int AS balance FROM accounts WHERE id IN ('acct-02', 'acct-03') ORDER BY id")).rows;
    const startBalances = await balances();
    const { id, jobId } = await createTransfer(db, { from: "acct-02", to: "acct-03", amount: 7 });
    const job = await client.get(jobId);
    const results = await Promise.all([applyTransfer(db, job, { workMs: 200 }), applyTransfer(db, job, { workMs: 200 })]);
    assert.deepEqual(
      results.map((r) => JSON.stringify(r)).sort(),
      [JSON.stringify({ transfer_id: id, already_applied: true }), JSON.stringify({ transfer_id: id, status: "confirmed" })].sort(),
    );
    // A third, later delivery: a no-op too.
    assert.deepEqual(await applyTransfer(db, job), { transfer_id: id, already_applied: true });
    assert.deepEqual(await balances(), [
      { id: "acct-02", balance: startBalances[0].balance - 7 },
      { id: "acct-03", balance: startBalances[1].balance + 7 },
    ]);
    assert.equal(await scalar("SELECT count(*) AS n FROM processed_jobs WHERE job_id = $1", [jobId]), 1);
    // Its job is still pending at the server (no worker ran it): the next worker's run of it
    // is one more no-op, which the next test counts among the redeliveries.
  });

  test("200 concurrent transfers, the worker killed mid-transaction: each applied exactly once", async (t) => {
    // 1. 200 transfers at once, between random pairs; every 40th would overdraw.
    const earlier = await scalar("SELECT count(*) AS n FROM transfers");
    const asked = Array.from({ length: TRANSFERS }, (_, i) => {
      const from = randomInt(ACCOUNTS);
      const to = (from + 1 + randomInt(ACCOUNTS - 1)) % ACCOUNTS;
      const name = (/** @type {number} */ n) => `acct-${String(n).padStart(2, "0")}`;
      return { from: name(from), to: name(to), amount: i % 40 === 0 ? OVERDRAW : 1 + randomInt(300) };
    });
    const answers = await Promise.all(asked.map((body) => post(body)));
    for (const answer of answers) {
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      assert.equal(answer.body.status, "pending");
      assert.equal(answer.body.status_url, `/transfers/${answer.body.id}`);
      assert.equal(answer.headers.get("location"), answer.body.status_url);
      assert.ok(Number.isSafeInteger(answer.body.job_id));
    }
    const total = await scalar("SELECT count(*) AS n FROM transfers");
    assert.equal(total, earlier + TRANSFERS, "these and the previous tests' transfers");
    const done = () => scalar("SELECT count(*) AS n FROM transfers WHERE status <> 'pending'");

    // 2. A worker; SIGKILL once some transfers are done, while it holds others mid-transaction.
    const first = startWorker("one");
    await eventually(async () => (await done()) >= KILL_AFTER, { what: `${KILL_AFTER} transfers done by the first worker`, timeoutMs: 60_000, intervalMs: 20 }).catch((error) => {
      throw new Error(`${error.message}\n--- worker output ---\n${first.output()}`);
    });
    assert.deepEqual(await first.kill("SIGKILL"), { code: null, signal: "SIGKILL" });
    const doneAtKill = await done();
    assert.ok(doneAtKill < total, `the kill came too late: all ${total} transfers were done`);
    const held = (await client.list({ kind: "transfer", state: "running", limit: 100 })).jobs;
    assert.ok(held.length > 0, "the killed worker held jobs (their leases must run out and be rescued)");
    t.diagnostic(`killed the first worker with ${doneAtKill} of ${total} transfers done and ${held.length} jobs held`);

    // While its job is still held (running, as the server knows), a transfer not yet
    // committed reads `processing`; one committed just before the kill reads as committed.
    let processing = 0;
    for (const job of held) {
      const transferId = /** @type {{ transfer_id: number }} */ (job.payload).transfer_id;
      const shown = await get(`/transfers/${transferId}`);
      assert.equal(shown.status, 200);
      const row = (await db.query("SELECT status FROM transfers WHERE id = $1", [transferId])).rows[0];
      if ((await client.get(job.id)).state !== "running") continue; // rescued meanwhile
      assert.equal(shown.body.status, row.status === "pending" ? "processing" : row.status, JSON.stringify(shown.body));
      if (shown.body.status === "processing") processing++;
    }
    t.diagnostic(`${processing} held transfers read "processing"`);

    // 3. A new worker finishes the rest, and the held jobs once the server has rescued them.
    const second = startWorker("two");
    const statusCounts = async () =>
      Object.fromEntries((await db.query("SELECT status, count(*)::int AS n FROM transfers GROUP BY status")).rows.map((r) => [r.status, r.n]));
    await eventually(async () => (await done()) === total, { what: "every transfer confirmed or failed", timeoutMs: 90_000, intervalMs: 250 }).catch(async (error) => {
      throw new Error(`${error.message}\ntransfers: ${JSON.stringify(await statusCounts())}\n--- second worker ---\n${second.output()}`);
    });
    await eventually(async () => (await countJobs("succeeded")) === total, { what: "every job succeeded", timeoutMs: 30_000, intervalMs: 100 });

    // 4. Nothing stuck, nothing twice.
    const transfers = (await db.query("SELECT id, from_account, to_account, amount, status, failure_reason, job_id FROM transfers ORDER BY id")).rows;
    assert.equal(transfers.length, total);
    const counts = await statusCounts();
    assert.deepEqual(Object.keys(counts).sort(), ["confirmed", "failed"]);
    assert.ok(counts.confirmed > 0);
    for (const row of transfers) {
      if (Number(row.amount) === OVERDRAW) assert.deepEqual([row.status, row.failure_reason], ["failed", "insufficient_funds"], `transfer ${row.id}`);
      if (row.status === "failed") assert.equal(row.failure_reason, "insufficient_funds");
    }
    t.diagnostic(`transfers: ${JSON.stringify(counts)}`);

    // The inbox: exactly one row per transfer job, and no other.
    assert.equal(await scalar("SELECT count(*) AS n FROM processed_jobs"), total);
    assert.equal(await scalar("SELECT count(*) AS n FROM transfers t JOIN processed_jobs p ON p.job_id = t.job_id"), total);

    // The money: none made or lost, and each account moved by exactly its confirmed transfers.
    assert.equal(await scalar("SELECT sum(balance) AS n FROM accounts"), ACCOUNTS * START_BALANCE);
    /** @type {Map<string, number>} */
    const expected = new Map();
    for (const row of transfers) {
      if (row.status !== "confirmed") continue;
      expected.set(row.from_account, (expected.get(row.from_account) ?? START_BALANCE) - Number(row.amount));
      expected.set(row.to_account, (expected.get(row.to_account) ?? START_BALANCE) + Number(row.amount));
    }
    for (const a of (await db.query("SELECT id, balance FROM accounts ORDER BY id")).rows) {
      assert.equal(Number(a.balance), expected.get(a.id) ?? START_BALANCE, `account ${a.id}`);
    }

    // The jobs: every one succeeded, one per transfer, its result the transfer's outcome (or
    // `already_applied` for a job redelivered after its first run had committed).
    /** @type {Map<number, any>} */
    const jobs = new Map();
    for await (const job of client.listAll({ kind: "transfer" })) jobs.set(job.id, job);
    assert.equal(jobs.size, total);
    let redelivered = 0;
    for (const row of transfers) {
      const job = jobs.get(Number(row.job_id));
      assert.ok(job, `the job of transfer ${row.id}`);
      assert.equal(job.state, "succeeded", JSON.stringify(job));
      if (job.result.already_applied === true) redelivered++;
      else assert.equal(job.result.status, row.status, JSON.stringify(job));
    }
    for (const state of ["pending", "scheduled", "running", "failed_will_retry", "dead", "cancelled"]) {
      assert.equal(await countJobs(state), 0, `jobs ${state}`);
    }
    t.diagnostic(`${redelivered} jobs ran again after a committed first run (no-ops)`);

    // The service reads every transfer as stored.
    const shown = await Promise.all(transfers.map((row) => get(`/transfers/${row.id}`)));
    for (const [i, s] of shown.entries()) {
      assert.equal(s.status, 200);
      assert.equal(s.body.status, transfers[i].status, JSON.stringify(s.body));
    }

    // 5. SIGTERM stops the second worker gracefully through the client.
    await stop(second, 30_000);
    assert.deepEqual(await second.exited, { code: 0, signal: null }, second.output());
    assert.match(second.output(), /stopped: \{"claimed":\d+/);
  });
});
