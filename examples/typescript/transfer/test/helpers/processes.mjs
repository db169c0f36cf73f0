// @ts-check
// Child processes for the test: spawned with their output kept, waited for by what they
// print, and all killed when the test process exits, whatever happened.

import { spawn } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";

/** @type {Set<import("node:child_process").ChildProcess>} */
const running = new Set();

// A child must not outlive the test, even when the test process dies of an error.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Polls `probe` until it returns a truthy value (returned) or `timeoutMs` passes (throws,
 * naming `what` and the last value or error). This is how the test waits: never a fixed sleep.
 *
 * @template T
 * @param {() => T | Promise<T>} probe
 * @param {{ what: string, timeoutMs?: number, intervalMs?: number }} options
 * @returns {Promise<NonNullable<T>>}
 */
export async function eventually(probe, { what, timeoutMs = 30_000, intervalMs = 50 }) {
  const deadline = Date.now() + timeoutMs;
  /** @type {unknown} */
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return /** @type {NonNullable<T>} */ (value);
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const shown = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${shown})`);
    }
    await delay(intervalMs);
  }
}

/**
 * A process started by {@link start}.
 *
 * @typedef {{
 *   name: string,
 *   child: import("node:child_process").ChildProcess,
 *   output: () => string,
 *   exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>,
 *   isRunning: () => boolean,
 *   waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>,
 *   kill: (signal?: NodeJS.Signals) => Promise<{ code: number | null, signal: NodeJS.Signals | null }>,
 * }} Started
 */

/**
 * Starts `command args` with `env`, keeping its stdout and stderr (the last 200 kB).
 *
 * @param {string} name for messages
 * @param {string} command
 * @param {string[]} args
 * @param {{ env: NodeJS.ProcessEnv, cwd?: string }} options
 * @returns {Started}
 */
export function start(name, command, args, { env, cwd }) {
  const child = spawn(command, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  /** @param {Buffer} chunk */
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  /** @type {{ code: number | null, signal: NodeJS.Signals | null } | undefined} */
  let exitInfo;
  const exited = new Promise((resolve) => {
    const done = (/** @type {number | null} */ code, /** @type {NodeJS.Signals | null} */ signal) => {
      running.delete(child);
      exitInfo = { code, signal };
      resolve(exitInfo);
    };
    child.once("exit", done);
    // A process that could not be spawned at all (ENOENT, ETXTBSY) never exits.
    child.once("error", (error) => {
      output += `\n[spawn error] ${error.message}`;
      done(null, null);
    });
  });
  /** @type {Started} */
  const started = {
    name,
    child,
    output: () => output,
    exited,
    isRunning: () => exitInfo === undefined,
    waitForOutput: (pattern, timeoutMs = 60_000) =>
      eventually(
        () => {
          const match = pattern.exec(output);
          if (match) return match;
          if (exitInfo !== undefined) throw new Error(`${name} exited (${JSON.stringify(exitInfo)}) before printing ${pattern}:\n${output}`);
          return undefined;
        },
        { what: `${name} to print ${pattern}`, timeoutMs, intervalMs: 20 },
      ).catch((error) => {
        throw new Error(`${error.message}\n--- ${name} output ---\n${output.slice(-4_000)}`);
      }),
    kill: async (signal = "SIGKILL") => {
      if (exitInfo === undefined) child.kill(signal);
      return exited;
    },
  };
  return started;
}

/**
 * Stops `proc` with SIGTERM, then SIGKILL if it has not exited after `graceMs`.
 *
 * @param {Started | undefined} proc
 * @param {number} [graceMs]
 */
export async function stop(proc, graceMs = 20_000) {
  if (proc === undefined || !proc.isRunning()) return;
  proc.child.kill("SIGTERM");
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), graceMs);
  await proc.exited;
  clearTimeout(timer);
}
