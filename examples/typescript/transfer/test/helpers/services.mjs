// @ts-check
// The services the test runs against: PostgreSQL (DATABASE_URL, or a skip with a printed
// reason, or a failure when FLOODGATE_REQUIRE_SERVICES is 1/true) and the real floodgate
// binary (FLOODGATE_BIN, else the workspace's debug build) serving from a schema of the test's
// own.

import { access, constants } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";

import { eventually, start, stop } from "./processes.mjs";

/** The example's directory. */
export const exampleDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Whether missing services fail the test instead of skipping it. */
export const servicesRequired = ["1", "true"].includes((process.env.FLOODGATE_REQUIRE_SERVICES ?? "").toLowerCase());

/**
 * Whether PostgreSQL can be used: `{ url }`, or `{ reason }` why not.
 *
 * @returns {Promise<{ url: string, reason?: undefined } | { url?: undefined, reason: string }>}
 */
export async function probePostgres() {
  const url = process.env.DATABASE_URL;
  if (!url) return { reason: "DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)" };
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return { url };
  } catch (error) {
    return { reason: `PostgreSQL at ${url} is unavailable: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `url` with `options=-c search_path=<schema>`: the app's connections then find its tables
 * and `floodgate_enqueue` in `schema`.
 *
 * @param {string} url
 * @param {string} schema
 * @returns {string}
 */
export function withSearchPath(url, schema) {
  const u = new URL(url);
  u.searchParams.set("options", `-c search_path=${schema}`);
  return u.href;
}

/**
 * The environment for a child: this one without any FLOODGATE_* variable, plus `extra`.
 *
 * @param {Record<string, string>} extra
 * @returns {NodeJS.ProcessEnv}
 */
export function childEnv(extra) {
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("FLOODGATE_")) env[key] = value;
  }
  return { ...env, ...extra };
}

/** The floodgate binary: FLOODGATE_BIN, else `../../../target/debug/floodgate` from the example. */
export function floodgateBinary() {
  return process.env.FLOODGATE_BIN ?? resolve(exampleDir, "..", "..", "..", "target", "debug", "floodgate");
}

/**
 * Starts `floodgate serve` on a port of its choosing with its tables and functions in
 * `schema` (`FLOODGATE_POSTGRES_SCHEMA`), and waits until `GET /health/ready` answers 200.
 * The binary may be being rebuilt: a missing or busy one is waited for (a minute at most).
 *
 * @param {{ databaseUrl: string, schema: string }} options
 * @returns {Promise<{ url: string, proc: import("./processes.mjs").Started, stop: () => Promise<void> }>}
 */
export async function startFloodgate({ databaseUrl, schema }) {
  const bin = floodgateBinary();
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await access(bin, constants.X_OK);
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`the floodgate binary ${bin} is missing (${error instanceof Error ? error.message : error}); set FLOODGATE_BIN`);
      await delay(500);
      continue;
    }
    const proc = start("floodgate", bin, ["serve", "--listen", "127.0.0.1:0", "--database-url", databaseUrl], {
      env: childEnv({ FLOODGATE_LOG: "warn", FLOODGATE_POSTGRES_SCHEMA: schema, FLOODGATE_RESCUE_INTERVAL: "1" }),
    });
    let url;
    try {
      url = (await proc.waitForOutput(/listening on (http:\/\/[0-9.]+:\d+)/, 60_000))[1];
    } catch (error) {
      await stop(proc);
      // A binary replaced under us (ETXTBSY, ENOENT) is tried again.
      if (/ETXTBSY|ENOENT/.test(proc.output()) && Date.now() < deadline) continue;
      throw error;
    }
    await eventually(
      async () => {
        if (!proc.isRunning()) throw new Error(`floodgate exited:\n${proc.output()}`);
        const res = await fetch(`${url}/health/ready`);
        await res.arrayBuffer();
        return res.status === 200;
      },
      { what: `floodgate at ${url} to be ready`, timeoutMs: 60_000 },
    );
    return { url, proc, stop: () => stop(proc) };
  }
}
