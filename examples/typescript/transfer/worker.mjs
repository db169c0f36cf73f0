// @ts-check
/**
 * The transfer worker: claims `transfer` jobs from the floodgate server's `default` queue
 * (eight at a time) and applies each exactly once (see `apply.mjs`). SIGTERM or SIGINT stop it
 * gracefully through the client: no more claims, running transfers finish (or are released
 * for another worker), then the process exits.
 *
 * Environment: `DATABASE_URL` (PostgreSQL, floodgate's schema on the search_path),
 * `FLOODGATE_URL` (default `http://127.0.0.1:7070`), `FLOODGATE_API_TOKEN` (if the server
 * wants one), `WORKER_LEASE_TTL` (seconds, default 10: how long a job stays with a worker
 * that stopped heartbeating, a crashed one say, before the server's rescuer gives it to
 * another), `TRANSFER_WORK_MS` (simulated work inside each transaction, default 0).
 *
 * @module
 */

import { Floodgate } from "@floodgate/client";

import { applyTransfer } from "./apply.mjs";
import { createPool } from "./db.mjs";

/** Jobs run at once. */
const CONCURRENCY = 8;

const env = process.env;

/**
 * A whole number from the environment, or `fallback` when unset.
 *
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @returns {number}
 */
function intFromEnv(name, fallback, min) {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number >= ${min}, not ${JSON.stringify(text)}`);
  return value;
}

const leaseTtl = intFromEnv("WORKER_LEASE_TTL", 10, 1);
const workMs = intFromEnv("TRANSFER_WORK_MS", 0, 0);
// One connection per running job, and one spare.
const pool = createPool(env.DATABASE_URL, { max: CONCURRENCY + 1, name: "transfer-worker" });
const client = new Floodgate({ baseUrl: env.FLOODGATE_URL ?? "http://127.0.0.1:7070", token: env.FLOODGATE_API_TOKEN });

const worker = client.work({
  queue: "default",
  kinds: ["transfer"],
  concurrency: CONCURRENCY,
  leaseTtl,
  handleSignals: true,
  handlers: {
    transfer: async (job) => {
      try {
        return await applyTransfer(pool, job, { workMs });
      } catch (error) {
        // The client reports the failure (a retry, or dead for a PermanentError); say it here too.
        console.warn(`transfer worker: job ${job.id} (attempt ${job.attempt}) failed: ${error instanceof Error ? error.message : String(error)}`);
        throw error;
      }
    },
  },
});
console.log(`transfer worker ${worker.name} started (queue default, concurrency ${CONCURRENCY}, lease ${leaseTtl} s)`);

const stats = await worker.closed;
await pool.end();
console.log(`transfer worker ${worker.name} stopped: ${JSON.stringify(stats)}`);
