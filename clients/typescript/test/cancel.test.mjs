// Cancellation: a running job's cancel reaches its handler through the next heartbeat (the
// signal aborts with CANCEL_REQUESTED), and the job ends `cancelled`. A waiting job is
// cancelled at once and never runs.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Floodgate } from "../dist/index.js";
import { eventually, startServer } from "./helpers/server.mjs";

test("cancel() aborts the running handler within about a heartbeat interval; the job ends cancelled", async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url });
  const { id } = await client.enqueue({ kind: "long", queue: "cancels" });
  const interval = 500;
  let started = false;
  /** @type {number} */
  let abortedAt;
  /** @type {any} */
  let reason;
  const errors = [];
  const worker = client.work({
    queue: "cancels",
    concurrency: 1,
    leaseTtl: 30,
    heartbeatIntervalMs: interval,
    handleSignals: false,
    onError: (e) => errors.push(e),
    handlers: {
      long: async (_job, { signal }) => {
        started = true;
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        abortedAt = Date.now();
        reason = signal.reason;
        throw reason;
      },
    },
  });
  t.after(() => worker.stop());
  await eventually(() => started, { what: "the handler started" });

  const cancelledAt = Date.now();
  const answer = await client.cancel(id);
  assert.deepEqual(answer, { id, state: "running" }, "a running job is asked to stop");
  const job = await client.waitFor(id, { timeoutMs: 60_000 });
  assert.equal(job.state, "cancelled");
  assert.equal(reason?.code, "CANCEL_REQUESTED");
  const latency = abortedAt - cancelledAt;
  // One interval, plus a heartbeat's round trip; generous for a loaded machine.
  assert.ok(latency < interval + 4_000, `the signal fired ${latency} ms after the cancel`);
  const stats = await worker.stop();
  assert.equal(stats.cancelled, 1);
  assert.equal(stats.failed, 0);
  assert.deepEqual(errors, []);
});

test("a waiting job is cancelled at once and retry() brings it back", async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url });
  const { id } = await client.enqueue({ kind: "later", queue: "cancels", run_at: new Date(Date.now() + 3_600_000) });
  assert.equal((await client.get(id)).state, "scheduled");
  assert.deepEqual(await client.cancel(id), { id, state: "cancelled" });
  assert.equal((await client.waitFor(id, { timeoutMs: 10_000 })).state, "cancelled");
  assert.deepEqual(await client.retry(id), { id, state: "pending" });
  assert.equal((await client.get(id)).state, "pending");
});
