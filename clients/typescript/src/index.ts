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
 * ```
 *
 * @module
 */

export { Floodgate } from "./client.js";
export type { CallOptions, ClaimOptions, ClaimResult, EnqueueOptions, FailOptions, FloodgateOptions, WaitOptions } from "./client.js";
export { FloodgateError, isFloodgateError } from "./errors.js";
export type { ClientErrorCode, ErrorCode, FloodgateErrorInit } from "./errors.js";
export { PermanentError, RetryError, SnoozeError, isSnooze, snooze } from "./outcomes.js";
export type { RetryErrorOptions, Snooze } from "./outcomes.js";
export { DEFAULT_RETRY_POLICY } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { FINISHED_STATES } from "./types.js";
export type {
  Accepted,
  ClaimedJob,
  ClaimRequest,
  CompleteItem,
  CompletedMany,
  HeartbeatMany,
  HeartbeatResponse,
  Job,
  JobPage,
  JobState,
  LeaseRef,
  ListAllFilters,
  ListFilters,
  NewBatchJob,
  NewJob,
  Problem,
  ProblemCode,
  Reported,
} from "./types.js";
export { Worker } from "./worker.js";
export type { Handler, JobContext, WorkerErrorContext, WorkerStats, WorkOptions } from "./worker.js";
export type { components, operations, paths } from "./openapi.js";
