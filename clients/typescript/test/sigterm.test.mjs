// SIGTERM to a worker process mid-run: it stops claiming, gives its handlers the shutdown
// timeout, aborts them, and releases their jobs. With a 300 s lease only a release can make
// them pending again right away; a second worker process then finishes them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Floodgate } from "../dist/index.js";
import { exitOf, spawnWorker } from "./helpers/processes.mjs";
import { startServer } from "./helpers/server.mjs";

test("SIGTERM releases a worker process's jobs at once, and another process finishes them", async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url });
  const queue = "sigterm";
  const accepted = await client.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ kind: "task", queue, payload: { i } })));
  const ids = accepted.map((a) => a.id);

  const base = { server: server.url, queue, leaseTtl: 300, shutdownTimeoutMs: 500 };
  const first = spawnWorker({ ...base, name: "first", mode: "block", concurrency: 4 });
  t.after(() => first.kill());
  await first.waitFor((events) => events.filter((e) => e.event === "started").length === 4, "four handlers started");
  const held = first.named("started").map((e) => e.id);
  for (const id of held) assert.equal((await client.get(id)).state, "running");

  first.child.kill("SIGTERM");
  const exit = await exitOf(first);
  assert.deepEqual(exit, { code: 0, signal: null }, `the worker exits by itself after a graceful stop; stderr: ${first.output()}`);
  const [closed] = first.named("closed");
  assert.equal(closed.stats.released, 4);
  assert.equal(closed.stats.claimed, 4);
  assert.equal(closed.sigtermListeners, 0, "its signal listeners are removed");
  assert.deepEqual(first.named("aborted").map((e) => e.code), ["WORKER_STOPPED", "WORKER_STOPPED", "WORKER_STOPPED", "WORKER_STOPPED"]);

  // Right after the exit: pending again, attempt given back, though the leases had 300 s left.
  for (const id of held) {
    const job = await client.get(id);
    assert.equal(job.state, "pending", `job ${id}`);
    assert.equal(job.attempt, 0, `job ${id}`);
  }
  assert.equal((await client.list({ queue, state: "running" })).jobs.length, 0);

  const second = spawnWorker({ ...base, name: "second", mode: "noop", concurrency: 4 });
  t.after(() => second.kill());
  for (const id of ids) {
    const job = await client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(job.state, "succeeded");
    assert.deepEqual(job.result, { by: "second" });
  }
  second.child.kill("SIGTERM");
  assert.deepEqual(await exitOf(second), { code: 0, signal: null });
  const [done] = second.named("closed");
  assert.equal(done.stats.succeeded, 6);
});
