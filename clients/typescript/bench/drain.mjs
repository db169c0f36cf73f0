#!/usr/bin/env node
// Drains N no-op jobs through `client.work` and prints one JSON line:
//   {"jobs": N, "concurrency": C, "seconds": S, "jobs_per_s": R}
// The jobs are enqueued first (1,000 per request, in a queue of their own), then the clock
// runs from the worker's start until the last success is acknowledged; the server's count of
// succeeded jobs is checked at the end.
//
//   node bench/drain.mjs --server http://127.0.0.1:7070 [--jobs 20000] [--concurrency 10]
//   node bench/drain.mjs --database-url /tmp/bench.db     (starts its own server on that store)
//   node bench/drain.mjs                                  (its own server on a fresh SQLite file)
//
// Uses dist/ (run `npm run build` after changing src/). The server binary is FLOODGATE_BIN,
// else ../../target/debug/floodgate.

import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { Floodgate } from "../dist/index.js";
import { startServer } from "../test/helpers/server.mjs";

const { values } = parseArgs({
  options: {
    server: { type: "string" },
    "database-url": { type: "string" },
    jobs: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "10" },
    "lease-ttl": { type: "string", default: "60" },
    token: { type: "string" },
  },
});
const jobs = Number(values.jobs);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error("--jobs and --concurrency must be whole numbers >= 1");
  process.exit(2);
}

const server = values.server === undefined ? await startServer(values["database-url"] === undefined ? {} : { databaseUrl: values["database-url"] }) : undefined;
try {
  const baseUrl = values.server ?? server.url;
  const client = new Floodgate({ baseUrl, ...(values.token === undefined ? {} : { token: values.token }) });
  const queue = `bench-${randomBytes(4).toString("hex")}`;

  for (let done = 0; done < jobs; ) {
    const n = Math.min(1_000, jobs - done);
    await client.enqueueMany(Array.from({ length: n }, () => ({ kind: "noop", queue })));
    done += n;
  }

  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  let succeeded = 0;
  const started = performance.now();
  const worker = client.work({
    queue,
    concurrency,
    leaseTtl: Number(values["lease-ttl"]),
    handleSignals: false,
    handlers: { noop: async () => undefined },
    onError: (error, context) => console.error(`worker ${context.during}: ${error}`),
  });
  // The worker's counter moves when each batch of completions is acknowledged.
  const poll = setInterval(() => {
    succeeded = worker.stats.succeeded;
    if (succeeded >= jobs) finish();
  }, 2);
  await finished;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(poll);
  const stats = await worker.stop();

  const res = await fetch(`${baseUrl}/v1/jobs/count?queue=${queue}&state=succeeded`, {
    headers: values.token === undefined ? {} : { authorization: `Bearer ${values.token}` },
  });
  const { count } = /** @type {{ count: number }} */ (await res.json());
  if (count !== jobs || stats.succeeded !== jobs) {
    console.error(`expected ${jobs} succeeded; the server counts ${count}, the worker ${stats.succeeded} (${JSON.stringify(stats)})`);
    process.exitCode = 1;
  }
  console.log(JSON.stringify({ jobs, concurrency, seconds: Number(seconds.toFixed(3)), jobs_per_s: Math.round(jobs / seconds) }));
} finally {
  await server?.close();
}
