// @ts-check
/**
 * The consumer's side: applying a `transfer` job EXACTLY ONCE, although floodgate delivers
 * each job AT LEAST once (a worker killed after its COMMIT but before reporting the job done
 * sees the job run again once its lease runs out).
 *
 * One transaction does it all: it records the job's id in the inbox table `processed_jobs`
 * (`ON CONFLICT DO NOTHING`), moves the money and marks the transfer. A delivery that finds
 * its job id already recorded changes nothing; a delivery whose transaction did not commit
 * (the worker died inside it) left nothing behind, not even the inbox row. A concurrent second
 * delivery blocks on the inbox row's key until the first commits, then finds it.
 *
 * A transfer that would overdraw its source is a business outcome, not an error: it is marked
 * `failed` (reason `insufficient_funds`) and the job succeeds, with that as its result. Only
 * technical failures fail the job: transient ones (a deadlock, a lost connection) are retried
 * after a second; a job naming a transfer that does not exist, or is not its own, goes dead at
 * once (`PermanentError`): running it again cannot help.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { PermanentError, RetryError } from "@floodgate/client";

import { isTransient, transaction } from "./db.mjs";

/**
 * What applying a job did (kept as the job's result): the transfer's new status, or
 * `already_applied` when an earlier delivery of the same job did it.
 *
 * @typedef {{ transfer_id: number, status: "confirmed" }
 *   | { transfer_id: number, status: "failed", reason: "insufficient_funds" }
 *   | { transfer_id: number, already_applied: true }} Applied
 */

/**
 * Options of {@link applyTransfer}.
 *
 * @typedef {{ workMs?: number }} ApplyOptions
 * `workMs`: simulated work (ms) inside the transaction, after the money moved and before the
 * COMMIT (default 0). The test uses it so that a worker killed mid-run dies mid-transaction.
 */

/**
 * Applies the transfer of `job` (payload `{transfer_id, ...}`) exactly once; see the module.
 *
 * @param {import("pg").Pool} pool
 * @param {{ id: number, payload: unknown }} job the claimed floodgate job
 * @param {ApplyOptions} [options]
 * @returns {Promise<Applied>}
 */
export async function applyTransfer(pool, job, { workMs = 0 } = {}) {
  const transferId = /** @type {{ transfer_id?: unknown } | null} */ (job.payload)?.transfer_id;
  if (typeof transferId !== "number" || !Number.isSafeInteger(transferId)) {
    throw new PermanentError(`job ${job.id}: the payload has no transfer_id: ${JSON.stringify(job.payload)}`);
  }
  try {
    return await transaction(pool, async (db) => {
      const inbox = await db.query("INSERT INTO processed_jobs (job_id) VALUES ($1) ON CONFLICT (job_id) DO NOTHING", [job.id]);
      if (inbox.rowCount === 0) return { transfer_id: transferId, already_applied: /** @type {const} */ (true) };

      const found = await db.query("SELECT from_account, to_account, amount, status, job_id FROM transfers WHERE id = $1 FOR UPDATE", [transferId]);
      if (found.rows.length === 0) throw new PermanentError(`job ${job.id}: transfer ${transferId} does not exist`);
      const t = found.rows[0];
      if (Number(t.job_id) !== job.id) throw new PermanentError(`job ${job.id}: transfer ${transferId} belongs to job ${t.job_id}`);
      if (t.status !== "pending") throw new PermanentError(`job ${job.id}: transfer ${transferId} is already ${t.status}, yet its job was never recorded as applied`);

      // Both accounts locked in id order: transfers between the same accounts in opposite
      // directions wait for each other instead of deadlocking.
      await db.query("SELECT id FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", [[t.from_account, t.to_account]]);
      const debit = await db.query("UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2", [t.from_account, t.amount]);
      /** @type {Applied} */
      let applied;
      if (debit.rowCount === 0) {
        await db.query("UPDATE transfers SET status = 'failed', failure_reason = 'insufficient_funds', updated_at = now() WHERE id = $1", [transferId]);
        applied = { transfer_id: transferId, status: "failed", reason: "insufficient_funds" };
      } else {
        await db.query("UPDATE accounts SET balance = balance + $2 WHERE id = $1", [t.to_account, t.amount]);
        await db.query("UPDATE transfers SET status = 'confirmed', updated_at = now() WHERE id = $1", [transferId]);
        applied = { transfer_id: transferId, status: "confirmed" };
      }
      if (workMs > 0) await sleep(workMs);
      return applied;
    });
  } catch (error) {
    if (error instanceof PermanentError || !isTransient(error)) throw error;
    throw new RetryError(`job ${job.id}: transfer ${transferId}: ${error instanceof Error ? error.message : String(error)}`, { retryInSeconds: 1, cause: error });
  }
}
