// Worker processes for tests: spawns test/fixtures/worker.mjs with a JSON config, collects the
// JSON lines it prints ({"event": ...}), and waits for events or for its exit.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { eventually } from "./server.mjs";

const fixture = fileURLToPath(new URL("../fixtures/worker.mjs", import.meta.url));

/**
 * Spawns a worker process. `config`: `{ server, queue, mode, concurrency, leaseTtl,
 * shutdownTimeoutMs, name, databaseUrl?, schema? }` (see the fixture). Returns
 * `{ child, events, waitFor(pred, what), exited, output() }`.
 */
export function spawnWorker(config) {
  const child = spawn(process.execPath, [fixture, JSON.stringify(config)], { stdio: ["ignore", "pipe", "pipe"] });
  const events = [];
  let buffer = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    buffer += chunk.toString();
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() !== "") events.push(JSON.parse(line));
    }
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk.toString();
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return {
    child,
    events,
    exited,
    output: () => stderr,
    /** The events named `name`. */
    named: (name) => events.filter((e) => e.event === name),
    /** Waits (up to `timeoutMs`) until `predicate(events)` holds. */
    waitFor: (predicate, what, timeoutMs = 60_000) =>
      eventually(() => predicate(events), { what: `${config.name}: ${what} (stderr: ${stderr.slice(-2000)})`, timeoutMs }),
    /** Kills it if still running (a test's cleanup). */
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Waits for a process's exit, failing after `timeoutMs`. */
export async function exitOf(worker, timeoutMs = 60_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`worker did not exit within ${timeoutMs} ms; stderr: ${worker.output().slice(-2000)}`)), timeoutMs);
  });
  try {
    return await Promise.race([worker.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
