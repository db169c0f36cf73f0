/**
 * `@floodgate/client`: the TypeScript client of the floodgate job queue server.
 *
 * ```ts
 * import { Floodgate, PermanentError } from "@floodgate/client";
 *
 * const client = new Floodgate({ baseUrl: "http://127.0.0.1:7070" });
 * const { id } = await client.enqueue({ kind: "email", payload: { to: "ada@example.com" } }, { idempotencyKey: "welcome-ada" });
 * const worker = client.work({ queue: "default", concurrency: 10, handlers: {
 *   email: async (job, { signal }) => sendEmail(job.payload, { signal }),
 * } });
 * const job = await client.waitFor(id); // succeeded, with the handler's result
 * await worker.stop();
 *
 * // Limits shared through the server: a permit, a rate check, a breaker (or all three: guarded).
 * await client.withPermit("llm", ({ signal }) => callTheModel({ signal }), { wait: 60 });
 * ```
 *
 * @module
 */
export { Floodgate } from "./client.js";
export { FloodgateError, isFloodgateError } from "./errors.js";
export { PermanentError, RetryError, SnoozeError, isSnooze, snooze } from "./outcomes.js";
export { Breaker, DEFAULT_MAX_WAIT, parseRateLimit } from "./limits.js";
export { DEFAULT_RETRY_POLICY } from "./retry.js";
export { FINISHED_STATES } from "./types.js";
export { Worker } from "./worker.js";
