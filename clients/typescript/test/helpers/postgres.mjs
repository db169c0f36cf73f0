// PostgreSQL for tests: DATABASE_URL, or a skip with a printed reason (a failure instead when
// FLOODGATE_REQUIRE_SERVICES=1), and a schema of the test's own, dropped after it.

import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * A pool on DATABASE_URL with a fresh schema (`schema`), or `undefined` after skipping `t`
 * when PostgreSQL is not configured or not reachable (unless services are required). The
 * schema is dropped and the pool ended after the test.
 */
export async function postgresFor(t) {
  const url = process.env.DATABASE_URL;
  const required = process.env.FLOODGATE_REQUIRE_SERVICES === "1";
  const skip = (reason) => {
    const message = `skipped: ${reason}; set FLOODGATE_REQUIRE_SERVICES=1 to fail instead`;
    if (required) throw new Error(`PostgreSQL is required (FLOODGATE_REQUIRE_SERVICES=1): ${reason}`);
    process.stderr.write(`${message}\n`);
    t.skip(message);
    return undefined;
  };
  if (!url) return skip("DATABASE_URL is not set, so the PostgreSQL test does not run");
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  try {
    await pool.query("SELECT 1");
  } catch (e) {
    await pool.end();
    return skip(`PostgreSQL at ${url} is unavailable (${e.message})`);
  }
  const schema = `floodgate_ts_${randomBytes(6).toString("hex")}`;
  await pool.query(`CREATE SCHEMA ${schema}`);
  t.after(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pool.end();
  });
  return { pool, schema, url };
}
