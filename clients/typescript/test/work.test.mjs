// The worker against the real server: a job enqueued, worked and waited for; every outcome a
// handler can choose; completions sent in batches; a graceful stop in-process.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Floodgate, PermanentError, RetryError, SnoozeError, snooze } from "../dist/index.js";
import { eventually, startServer } from "./helpers/server.mjs";

/** A server for one test, closed after it. */
async function serverFor(t) {
  const server = await startServer();
  t.after(() => server.close());
  return server;
}

/** A worker stopped after the test, whatever happens. */
function workerFor(t, client, options) {
  const errors = [];
  const worker = client.work({ handleSignals: false, onError: (e) => errors.push(e), ...options });
  t.after(() => worker.stop());
  return { worker, errors };
}

test("a job enqueued is worked, and waitFor resolves with it succeeded and its result", async (t) => {
  const server = await serverFor(t);
  const client = new Floodgate({ baseUrl: server.url });
  const accepted = await client.enqueue({ kind: "add", payload: { a: 2, b: 3 } }, { idempotencyKey: "add-2-3" });
  assert.equal(accepted.state, "pending");
  assert.equal(accepted.duplicate, false);
  const seen = [];
  const { worker, errors } = workerFor(t, client, {
    queue: "default",
    concurrency: 2,
    handlers: {
      add: async (job, { signal, heartbeat, worker: name }) => {
        assert.equal(signal.aborted, false);
        await heartbeat(); // extends the lease; resolves while the job may go on
        seen.push({ id: job.id, attempt: job.attempt, name, token: typeof job.lease_token });
        return { sum: job.payload.a + job.payload.b };
      },
    },
  });
  const job = await client.waitFor(accepted.id, { timeoutMs: 60_000 });
  assert.equal(job.state, "succeeded");
  assert.deepEqual(job.result, { sum: 5 });
  assert.deepEqual(seen, [{ id: accepted.id, attempt: 1, name: worker.name, token: "string" }]);
  const stats = await worker.stop();
  assert.equal(stats.claimed, 1);
  assert.equal(stats.succeeded, 1);
  assert.equal(stats.running, 0);
  assert.deepEqual(errors, []);
});

test("handlers fail, fail for good, retry later or snooze as they say", async (t) => {
  const server = await serverFor(t);
  const client = new Floodgate({ baseUrl: server.url });
  const ids = {};
  for (const kind of ["throws", "permanent", "retry_in", "snooze_return", "snooze_throw"]) {
    ids[kind] = (await client.enqueue({ kind, queue: "outcomes", max_attempts: 5 })).id;
  }
  const { worker, errors } = workerFor(t, client, {
    queue: "outcomes",
    concurrency: 5,
    handlers: {
      // Any error: retried after the server's backoff (up to a second for the first retry).
      throws: async (job) => {
        if (job.attempt === 1) throw new TypeError("bad input");
        return "second time lucky";
      },
      permanent: async () => {
        throw new PermanentError("cannot ever work");
      },
      retry_in: async () => {
        throw new RetryError("upstream busy", { retryInSeconds: 600 });
      },
      snooze_return: async () => snooze(900),
      snooze_throw: async () => {
        throw new SnoozeError(900);
      },
    },
  });
  // Six reports, after which nothing runs again for ten minutes.
  await eventually(() => worker.stats.failed + worker.stats.snoozed + worker.stats.succeeded === 6, { what: "six reports", timeoutMs: 60_000 });
  const now = Date.now();
  const get = (kind) => client.get(ids[kind]);

  const thrown = await get("throws");
  assert.equal(thrown.state, "succeeded");
  assert.equal(thrown.attempt, 2);
  assert.equal(thrown.result, "second time lucky");

  const dead = await get("permanent");
  assert.equal(dead.state, "dead");
  assert.equal(dead.last_error, "PermanentError: cannot ever work");

  const later = await get("retry_in");
  assert.equal(later.state, "failed_will_retry");
  assert.equal(later.last_error, "RetryError: upstream busy");
  const retryIn = (Date.parse(later.run_at) - now) / 1000;
  assert.ok(retryIn > 500 && retryIn <= 601, `retry in ${retryIn} s, expected about 600`);

  for (const kind of ["snooze_return", "snooze_throw"]) {
    const snoozed = await get(kind);
    assert.equal(snoozed.state, "scheduled");
    assert.equal(snoozed.attempt, 0, "a snooze does not spend the attempt");
    const inSeconds = (Date.parse(snoozed.run_at) - now) / 1000;
    assert.ok(inSeconds > 800 && inSeconds <= 901, `${kind} runs in ${inSeconds} s, expected about 900`);
  }
  const stats = await worker.stop();
  assert.deepEqual({ failed: stats.failed, snoozed: stats.snoozed, succeeded: stats.succeeded }, { failed: 3, snoozed: 2, succeeded: 1 });
  assert.deepEqual(errors, []);
});

test("successes are completed in batches, not one request per job", async (t) => {
  const server = await serverFor(t);
  const requests = { single: 0, batch: 0 };
  const countingFetch = (url, init) => {
    const path = new URL(url).pathname;
    if (path === "/v1/jobs/complete") requests.batch++;
    else if (/^\/v1\/jobs\/\d+\/complete$/.test(path)) requests.single++;
    return fetch(url, init);
  };
  const client = new Floodgate({ baseUrl: server.url, fetch: countingFetch });
  const jobs = 500;
  const accepted = await client.enqueueMany(Array.from({ length: jobs }, (_, i) => ({ kind: "echo", queue: "batched", payload: i })));
  const { worker, errors } = workerFor(t, client, { queue: "batched", concurrency: 50, handlers: { echo: async (job) => job.payload } });
  await eventually(() => worker.stats.succeeded === jobs, { what: `${jobs} successes`, timeoutMs: 120_000 });
  assert.equal(requests.single, 0);
  assert.ok(requests.batch <= jobs / 5, `${requests.batch} completion requests for ${jobs} jobs`);
  const last = await client.get(accepted[jobs - 1].id);
  assert.equal(last.result, jobs - 1);
  let succeeded = 0;
  for await (const job of client.listAll({ queue: "batched", state: "succeeded", limit: 70 })) {
    assert.equal(job.result, job.payload);
    succeeded++;
  }
  assert.equal(succeeded, jobs);
  await worker.stop();
  assert.deepEqual(errors, []);
});

test("stop() lets a running handler finish, then releases one that overruns the shutdown timeout", async (t) => {
  const server = await serverFor(t);
  const client = new Floodgate({ baseUrl: server.url });
  const quick = await client.enqueue({ kind: "quick", queue: "stopping" });
  const stuck = await client.enqueue({ kind: "stuck", queue: "stopping" });
  /** @type {() => void} */
  let release;
  const gate = new Promise((resolve) => (release = () => resolve(undefined)));
  /** @type {any} */
  let stuckReason;
  const started = new Set();
  const listenersBefore = process.listenerCount("SIGTERM");
  const errors = [];
  const worker = client.work({
    queue: "stopping",
    concurrency: 2,
    leaseTtl: 300,
    shutdownTimeoutMs: 1_000,
    onError: (e) => errors.push(e),
    handlers: {
      quick: async () => {
        started.add("quick");
        await gate;
        return "finished while stopping";
      },
      stuck: async (_job, { signal }) => {
        started.add("stuck");
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        stuckReason = signal.reason;
        throw signal.reason;
      },
    },
  });
  t.after(() => worker.stop());
  assert.equal(process.listenerCount("SIGTERM"), listenersBefore + 1, "handleSignals installs a SIGTERM listener");
  await eventually(() => started.size === 2, { what: "both handlers started" });
  const stopped = worker.stop();
  release();
  const stats = await stopped;
  assert.equal(stats.succeeded, 1);
  assert.equal(stats.released, 1);
  assert.equal(stuckReason?.code, "WORKER_STOPPED");
  assert.equal((await client.get(quick.id)).result, "finished while stopping");
  const back = await client.get(stuck.id);
  assert.equal(back.state, "pending", "released at once, not left for its 300 s lease to run out");
  assert.equal(back.attempt, 0);
  assert.equal(process.listenerCount("SIGTERM"), listenersBefore, "the listener is removed once stopped");
  assert.deepEqual(errors, []);
});

test("SIGTERM stops a worker gracefully, a second SIGTERM skips the wait; aborting its signal stops it too", async (t) => {
  const server = await serverFor(t);
  const client = new Floodgate({ baseUrl: server.url });
  const { id } = await client.enqueue({ kind: "stuck", queue: "signals" });
  let started = false;
  const errors = [];
  const worker = client.work({
    queue: "signals",
    concurrency: 1,
    leaseTtl: 300,
    shutdownTimeoutMs: 600_000,
    onError: (e) => errors.push(e),
    handlers: {
      stuck: async (_job, { signal }) => {
        started = true;
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        throw signal.reason;
      },
    },
  });
  t.after(() => worker.stop());
  await eventually(() => started, { what: "the handler started" });
  // The worker's own listeners get these (process.emit does not signal the process).
  process.emit("SIGTERM", "SIGTERM");
  process.emit("SIGTERM", "SIGTERM"); // do not wait the ten minutes
  const stats = await worker.closed;
  assert.equal(stats.released, 1);
  assert.equal((await client.get(id)).state, "pending");
  assert.deepEqual(errors, []);

  const controller = new AbortController();
  const idle = client.work({ queue: "idle", handlers: { stuck: async () => "never" }, signal: controller.signal, handleSignals: false, onError: (e) => errors.push(e) });
  controller.abort();
  const idleStats = await idle.closed;
  assert.equal(idleStats.claimed, 0);
  assert.deepEqual(errors, []);
});

test("a worker refuses options it cannot honour", () => {
  const client = new Floodgate({ baseUrl: "http://127.0.0.1:9" });
  assert.throws(() => client.work({ handlers: {} }), TypeError);
  assert.throws(() => client.work({ handlers: { a: async () => 1 }, kinds: ["a", "b"] }), /has no handler/);
  assert.throws(() => client.work({ handlers: { a: async () => 1 }, concurrency: 0 }), RangeError);
  assert.throws(() => client.work({ handlers: { a: async () => 1 }, leaseTtl: 0 }), RangeError);
  assert.throws(() => client.work({ handlers: { a: async () => 1 }, wait: 31 }), RangeError);
  assert.throws(() => client.work({ handlers: { a: async () => 1 }, leaseTtl: 2, heartbeatIntervalMs: 2_000 }), RangeError);
});
