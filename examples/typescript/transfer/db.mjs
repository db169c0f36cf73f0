// @ts-check
/**
 * The example's PostgreSQL access: a pool on `DATABASE_URL`, the schema (`schema.sql`), a
 * transaction helper and the test for errors worth retrying.
 *
 * `DATABASE_URL` must reach the database floodgate serves from, with floodgate's schema on the
 * `search_path` (`public` by default; for another schema add
 * `?options=-c%20search_path%3D<schema>`), so that `floodgate_enqueue(...)` and the app's
 * tables resolve there.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import pg from "pg";

/**
 * A connection pool on `databaseUrl`. Errors of idle connections (the database restarted,
 * say) are logged instead of crashing the process; the pool replaces such connections.
 *
 * @param {string | undefined} databaseUrl the PostgreSQL URL (`DATABASE_URL`)
 * @param {{ max: number, name: string }} options pool size, and the process's name for logs
 * @returns {pg.Pool}
 */
export function createPool(databaseUrl, { max, name }) {
  if (!databaseUrl) throw new Error(`${name}: DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)`);
  const pool = new pg.Pool({ connectionString: databaseUrl, max, application_name: name });
  pool.on("error", (error) => console.error(`${name}: idle database connection failed: ${error.message}`));
  return pool;
}

/**
 * Creates the example's tables if missing (`schema.sql`, every statement repeatable). An
 * advisory lock keeps two processes starting at once from racing on `CREATE TABLE`.
 *
 * @param {pg.Pool} pool
 * @returns {Promise<void>}
 */
export async function applySchema(pool) {
  const sql = await readFile(new URL("./schema.sql", import.meta.url), "utf8");
  await transaction(pool, async (db) => {
    await db.query("SELECT pg_advisory_xact_lock(hashtext('floodgate-example-transfer-schema'))");
    await db.query(sql);
  });
}

/**
 * Runs `work` in one transaction on a connection of `pool`: COMMIT when it resolves,
 * ROLLBACK when it throws (the error is rethrown). A connection whose rollback failed is
 * discarded, not returned to the pool.
 *
 * @template T
 * @param {pg.Pool} pool
 * @param {(db: pg.PoolClient) => Promise<T>} work
 * @returns {Promise<T>}
 */
export async function transaction(pool, work) {
  const db = await pool.connect();
  let broken = false;
  try {
    await db.query("BEGIN");
    const result = await work(db);
    await db.query("COMMIT");
    return result;
  } catch (error) {
    try {
      await db.query("ROLLBACK");
    } catch {
      broken = true;
    }
    throw error;
  } finally {
    db.release(broken);
  }
}

/**
 * Whether a database error may pass if the same work is tried again: a serialization failure
 * or deadlock (SQLSTATE class 40), a lost or refused connection (class 08, or a Node socket
 * error), the server shutting down (57P01..57P03) or out of resources (class 53).
 *
 * @param {unknown} error
 * @returns {boolean}
 */
export function isTransient(error) {
  if (typeof error !== "object" || error === null) return false;
  const code = /** @type {{ code?: unknown }} */ (error).code;
  if (typeof code !== "string") {
    // pg rejects with a plain Error when the connection ends under a query.
    return error instanceof Error && /Connection terminated|connection timeout/i.test(error.message);
  }
  return /^(40|08|53)/.test(code) || ["57P01", "57P02", "57P03", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE"].includes(code);
}
