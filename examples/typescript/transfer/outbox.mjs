// @ts-check
/**
 * The producer's side of the transactional outbox: a transfer's row and the floodgate job
 * that will apply it are written by ONE PostgreSQL transaction, through the SQL function
 * `floodgate_enqueue(...)` that floodgate installs in its schema. Both are committed, or
 * neither: no job without its transfer (a crash after the enqueue), no transfer without a job
 * (a crash before it), and no distributed transaction between the database and the queue.
 *
 * @module
 */

import { transaction } from "./db.mjs";

/** The largest amount one transfer may move (in the smallest unit of the currency). */
export const MAX_AMOUNT = 1_000_000_000_000;

/** The longest account id. */
const MAX_ACCOUNT_LENGTH = 64;

/**
 * A transfer asked for: `amount` from account `from` to account `to`.
 *
 * @typedef {{ from: string, to: string, amount: number }} TransferRequest
 */

/**
 * A transfer as stored (`transfers`), with the ids as numbers.
 *
 * @typedef {{
 *   id: number,
 *   from: string,
 *   to: string,
 *   amount: number,
 *   status: "pending" | "confirmed" | "failed",
 *   failure_reason: string | null,
 *   job_id: number,
 *   created_at: string,
 *   updated_at: string,
 * }} Transfer
 */

/**
 * Checks a request body. Returns the transfer, or every problem found (one per field).
 *
 * @param {unknown} body the parsed JSON body
 * @returns {{ ok: true, value: TransferRequest } | { ok: false, errors: import("./problem.mjs").FieldError[] }}
 */
export function validateTransfer(body) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, errors: [{ field: "", message: "the body must be a JSON object {from, to, amount}" }] };
  }
  const input = /** @type {Record<string, unknown>} */ (body);
  /** @type {import("./problem.mjs").FieldError[]} */
  const errors = [];
  for (const field of ["from", "to"]) {
    const value = input[field];
    if (typeof value !== "string" || value.length === 0 || value.length > MAX_ACCOUNT_LENGTH) {
      errors.push({ field, message: `must be an account id: a string of 1 to ${MAX_ACCOUNT_LENGTH} characters` });
    }
  }
  if (errors.length === 0 && input.from === input.to) {
    errors.push({ field: "to", message: "must differ from `from`" });
  }
  const amount = input.amount;
  if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 1 || amount > MAX_AMOUNT) {
    errors.push({ field: "amount", message: `must be a whole number from 1 to ${MAX_AMOUNT}` });
  }
  for (const field of Object.keys(input)) {
    if (!["from", "to", "amount"].includes(field)) errors.push({ field, message: "is not a field of a transfer (from, to, amount)" });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { from: /** @type {string} */ (input.from), to: /** @type {string} */ (input.to), amount: /** @type {number} */ (amount) } };
}

/** A transfer names an account that does not exist (found at COMMIT; nothing was kept). */
export class UnknownAccountError extends Error {
  /**
   * @param {"from" | "to"} field the request field naming the account
   * @param {string} account the account id
   */
  constructor(field, account) {
    super(`account ${JSON.stringify(account)} (${field}) does not exist`);
    this.name = "UnknownAccountError";
    /** The request field naming the account. */
    this.field = field;
    /** The account id. */
    this.account = account;
  }
}

/**
 * Records a transfer and enqueues its job in ONE transaction: the row (`pending`), then
 * `floodgate_enqueue(kind => 'transfer', ...)` with the idempotency key `transfer:<id>`, then
 * the job's id on the row. The accounts are checked at COMMIT (deferred foreign keys): an
 * unknown one rejects with {@link UnknownAccountError}, and the row and the job are both
 * rolled back.
 *
 * @param {import("pg").Pool} pool
 * @param {TransferRequest} transfer
 * @returns {Promise<{ id: number, jobId: number }>}
 */
export async function createTransfer(pool, { from, to, amount }) {
  try {
    return await transaction(pool, async (db) => {
      const inserted = await db.query("INSERT INTO transfers (from_account, to_account, amount) VALUES ($1, $2, $3) RETURNING id", [from, to, amount]);
      const id = Number(inserted.rows[0].id);
      const payload = JSON.stringify({ transfer_id: id, from, to, amount });
      const enqueued = await db.query(
        "SELECT floodgate_enqueue(kind => 'transfer', payload => $1::jsonb, idempotency_key => 'transfer:' || $2::bigint) AS job_id",
        [payload, id],
      );
      const jobId = Number(enqueued.rows[0].job_id);
      await db.query("UPDATE transfers SET job_id = $1 WHERE id = $2", [jobId, id]);
      return { id, jobId };
    });
  } catch (error) {
    // 23503: foreign_key_violation, raised by the COMMIT above (the constraints are deferred).
    if (isPgError(error) && error.code === "23503" && error.table === "transfers") {
      const field = error.constraint?.includes("from") ? "from" : "to";
      throw new UnknownAccountError(field, field === "from" ? from : to);
    }
    throw error;
  }
}

/**
 * A transfer by id, or `undefined` when there is none.
 *
 * @param {import("pg").Pool} pool
 * @param {number} id
 * @returns {Promise<Transfer | undefined>}
 */
export async function readTransfer(pool, id) {
  const { rows } = await pool.query(
    `SELECT id, from_account, to_account, amount, status, failure_reason, job_id, created_at, updated_at
       FROM transfers WHERE id = $1`,
    [id],
  );
  if (rows.length === 0) return undefined;
  const r = rows[0];
  return {
    id: Number(r.id),
    from: r.from_account,
    to: r.to_account,
    amount: Number(r.amount),
    status: r.status,
    failure_reason: r.failure_reason,
    job_id: Number(r.job_id),
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/**
 * Whether `error` is an error PostgreSQL sent (it has a SQLSTATE `code`).
 *
 * @param {unknown} error
 * @returns {error is Error & { code: string, table?: string, constraint?: string }}
 */
function isPgError(error) {
  return error instanceof Error && typeof (/** @type {{ code?: unknown }} */ (error).code) === "string";
}
