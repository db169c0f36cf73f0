// Starts the real floodgate binary for a test, a benchmark or the generator: a fresh SQLite
// file in a temporary directory (unless a database URL is given), a free port chosen by the
// server itself (`--listen 127.0.0.1:0`, the address read from its first line), and a wait
// until `GET /health/ready` answers 200.

import { spawn } from "node:child_process";
import { access, constants, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The client package's directory. */
export const packageDir = resolve(here, "..", "..");

/** The floodgate binary: `FLOODGATE_BIN`, else the workspace's debug build. */
export function binaryPath() {
  return process.env.FLOODGATE_BIN ?? resolve(packageDir, "..", "..", "target", "debug", "floodgate");
}

/** Sleeps `ms` milliseconds. */
export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` until it returns a truthy value (returned) or `timeoutMs` passes (throws with
 * `what`). No fixed sleep decides anything: this is how tests wait.
 */
export async function eventually(probe, { timeoutMs = 30_000, intervalMs = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.stack : JSON.stringify(last)})`);
    }
    await delay(intervalMs);
  }
}

/** The environment for the server: no FLOODGATE_* variable but FLOODGATE_LOG=warn, plus `extra`. */
function serverEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("FLOODGATE_")) env[k] = v;
  }
  env.FLOODGATE_LOG = "warn";
  return { ...env, ...extra };
}

/** Waits (up to a minute) for the binary to exist: it may be rebuilt under us. */
async function waitForBinary(bin) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await access(bin, constants.X_OK);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`floodgate binary ${bin} is missing: ${e.message}; set FLOODGATE_BIN`);
      await delay(500);
    }
  }
}

/**
 * Starts `floodgate serve`. Options: `databaseUrl` (default: a fresh SQLite file in a new
 * temporary directory), `port` (default 0: any free port), `env` (extra variables, e.g.
 * `{ FLOODGATE_API_TOKEN: "secret" }`), `dir` (reuse a directory, e.g. to restart on the same
 * file), `config` (TOML settings, e.g. `[limiters.llm]` tables, written to `floodgate.toml` in
 * the directory and passed as `--config`). Returns `{ url, port, dir, databaseUrl, child,
 * logs(), stop(), close() }`: `stop()` sends SIGTERM and waits for the exit; `close()` stops
 * and removes the directory it made.
 *
 * @param {{ databaseUrl?: string, port?: number, env?: Record<string, string>, dir?: string, config?: string }} [options]
 */
export async function startServer({ databaseUrl, port = 0, env = {}, dir, config } = {}) {
  const bin = binaryPath();
  const ownDir = dir === undefined;
  const workDir = dir ?? (await mkdtemp(join(tmpdir(), "floodgate-ts-")));
  const db = databaseUrl ?? join(workDir, "jobs.db");
  const extraArgs = [];
  if (config !== undefined) {
    const file = join(workDir, "floodgate.toml");
    await writeFile(file, config);
    extraArgs.push("--config", file);
  }
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      await waitForBinary(bin);
      const server = await launch(bin, db, port, serverEnv(env), deadline, extraArgs);
      const close = async () => {
        await server.stop();
        if (ownDir) await rm(workDir, { recursive: true, force: true });
      };
      return { ...server, dir: workDir, databaseUrl: db, close };
    } catch (e) {
      // A binary being replaced (ETXTBSY, ENOENT) is retried, and so is a port not yet free
      // again after a restart; anything else (a bad setting, say) fails at once.
      const retryable = ["ETXTBSY", "ENOENT", "EACCES"].includes(e.code) || /address already in use/i.test(e.message);
      if (!retryable || Date.now() > deadline) {
        if (ownDir) await rm(workDir, { recursive: true, force: true });
        throw e;
      }
      await delay(500);
    }
  }
}

async function launch(bin, db, port, env, deadline, extraArgs = []) {
  const child = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--database-url", db, ...extraArgs], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  const spawnError = new Promise((_, rej) => child.once("error", rej));
  spawnError.catch(() => {});
  let exitInfo;
  exited.then((info) => (exitInfo = info));

  const stop = async () => {
    if (exitInfo === undefined) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(killer);
    }
  };
  try {
    const url = await Promise.race([
      spawnError,
      (async () => {
        for (;;) {
          const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(output);
          if (m) return m[1];
          if (exitInfo) throw new Error(`floodgate exited (${JSON.stringify(exitInfo)}) before listening:\n${output}`);
          if (Date.now() > deadline) throw new Error(`floodgate did not start listening:\n${output}`);
          await delay(20);
        }
      })(),
    ]);
    for (;;) {
      if (exitInfo) throw new Error(`floodgate exited (${JSON.stringify(exitInfo)}):\n${output}`);
      try {
        const res = await fetch(`${url}/health/ready`);
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`floodgate at ${url} never became ready:\n${output}`);
      await delay(50);
    }
    return { url, port: Number(new URL(url).port), child, logs: () => output, stop, exited };
  } catch (e) {
    await stop();
    throw e;
  }
}
