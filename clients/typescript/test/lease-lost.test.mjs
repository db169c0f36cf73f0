// A lease the server takes back. The server is restarted under the worker: its graceful
// shutdown puts every job an HTTP worker holds back to `pending` (the token no longer holds),
// and a second, raw claim takes the job under a new token. The worker must learn it from the
// server (a heartbeat's `lease_lost`, or a completion's), abort the handler's signal, count the
// job lost and report nothing for it.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Floodgate } from "../dist/index.js";
import { eventually, startServer } from "./helpers/server.mjs";

/** Restarts `server` on the same port and database; returns the new one. */
async function restart(t, server) {
  await server.stop();
  const again = await startServer({ port: server.port, dir: server.dir, databaseUrl: server.databaseUrl });
  t.after(() => again.close());
  return again;
}

/** Claims the job as another worker, with plain HTTP, until the server hands it out. */
async function stealJob(url, queue, id) {
  return eventually(
    async () => {
      const res = await fetch(`${url}/v1/queues/${queue}/claim`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ worker: "thief", limit: 1, wait: 1, lease_ttl: 300 }),
      });
      const { jobs } = /** @type {{ jobs: { id: number, lease_token: string }[] }} */ (await res.json());
      return jobs.find((j) => j.id === id);
    },
    { what: `job ${id} claimed by another worker`, timeoutMs: 60_000 },
  );
}

async function completeAsThief(url, job) {
  const res = await fetch(`${url}/v1/jobs/${job.id}/complete`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ lease_token: job.lease_token, result: { by: "thief" } }),
  });
  assert.equal(res.status, 200, await res.text());
}

test("a heartbeat answering lease_lost aborts the handler, and its outcome is not reported", async (t) => {
  const first = await startServer();
  t.after(() => first.close());
  const client = new Floodgate({ baseUrl: first.url, retries: { retries: 2, baseDelayMs: 50 } });
  const { id } = await client.enqueue({ kind: "slow", queue: "lost" });
  let started = false;
  /** @type {any} */
  let reason;
  // The handler keeps its slot after the abort until the end, so that this worker cannot
  // claim the released job again before the other one does.
  /** @type {() => void} */
  let end;
  const ended = new Promise((resolve) => (end = () => resolve(undefined)));
  const worker = client.work({
    queue: "lost",
    concurrency: 1,
    leaseTtl: 2,
    heartbeatIntervalMs: 300,
    shutdownTimeoutMs: 2_000,
    handleSignals: false,
    onError: () => {}, // heartbeats fail while the server restarts
    handlers: {
      slow: async (_job, { signal }) => {
        started = true;
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        reason = signal.reason;
        await ended;
        throw reason; // would fail the job, were it still ours
      },
    },
  });
  t.after(() => worker.stop());
  await eventually(() => started, { what: "the handler started" });

  const second = await restart(t, first);
  const stolen = await stealJob(second.url, "lost", id);
  await eventually(() => reason !== undefined, { what: "the handler's signal aborted", timeoutMs: 60_000 });
  assert.equal(reason.code, "LEASE_LOST");
  assert.equal(worker.stats.lost, 1);

  await completeAsThief(second.url, stolen);
  end();
  const stats = await worker.stop();
  assert.deepEqual({ lost: stats.lost, failed: stats.failed, succeeded: stats.succeeded, errors: stats.errors }, { lost: 1, failed: 0, succeeded: 0, errors: 0 });
  const job = await client.get(id);
  assert.equal(job.state, "succeeded");
  assert.deepEqual(job.result, { by: "thief" });
});

test("a completion answering lease_lost counts the job lost and aborts its signal", async (t) => {
  const first = await startServer();
  t.after(() => first.close());
  let blockHeartbeats = false;
  const heartbeatsBlocked = (url, init) => {
    if (blockHeartbeats && new URL(url).pathname.endsWith("/heartbeat")) {
      return Promise.reject(new TypeError("fetch failed", { cause: new Error("heartbeats blocked by the test") }));
    }
    return fetch(url, init);
  };
  const client = new Floodgate({ baseUrl: first.url, fetch: heartbeatsBlocked, retries: { retries: 2, baseDelayMs: 50 } });
  const { id } = await client.enqueue({ kind: "slow", queue: "lost" });
  /** @type {() => void} */
  let finish;
  const gate = new Promise((resolve) => (finish = () => resolve(undefined)));
  /** @type {AbortSignal} */
  let signal;
  const worker = client.work({
    queue: "lost",
    concurrency: 1,
    leaseTtl: 2,
    heartbeatIntervalMs: 300,
    shutdownTimeoutMs: 2_000,
    handleSignals: false,
    onError: () => {},
    handlers: {
      slow: async (_job, context) => {
        signal = context.signal;
        await gate;
        return { by: "worker" };
      },
    },
  });
  t.after(() => worker.stop());
  await eventually(() => signal !== undefined, { what: "the handler started" });
  blockHeartbeats = true; // the worker cannot learn of the loss before it reports

  const second = await restart(t, first);
  const stolen = await stealJob(second.url, "lost", id);
  assert.equal(signal.aborted, false);
  finish();
  await eventually(() => worker.stats.lost === 1, { what: "the completion answered lease_lost", timeoutMs: 60_000 });
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason.code, "LEASE_LOST");
  assert.equal(worker.stats.succeeded, 0);

  await completeAsThief(second.url, stolen);
  await worker.stop();
  assert.deepEqual((await client.get(id)).result, { by: "thief" });
});
