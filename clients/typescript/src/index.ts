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
export type { CallOptions, ClaimOptions, ClaimResult, EnqueueOptions, FailOptions, FloodgateOptions, WaitOptions } from "./client.js";
export { FloodgateError, isFloodgateError } from "./errors.js";
export type { ClientErrorCode, ErrorCode, FloodgateErrorInit } from "./errors.js";
export { PermanentError, RetryError, SnoozeError, isSnooze, snooze } from "./outcomes.js";
export type { RetryErrorOptions, Snooze } from "./outcomes.js";
export { Breaker, DEFAULT_MAX_WAIT, parseRateLimit } from "./limits.js";
export type {
  AcquireOptions,
  BreakerCallContext,
  BreakerCallOptions,
  BreakerOptions,
  FailureClass,
  GuardContext,
  GuardOptions,
  LimitsErrorContext,
  LimitsErrorHandler,
  PermitContext,
  PermitOptions,
  RateCheckOptions,
  RateDecision,
  RateLimitField,
} from "./limits.js";
export { DEFAULT_RETRY_POLICY } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { FINISHED_STATES } from "./types.js";
export type {
  Accepted,
  BreakerState,
  BreakerView,
  CallAdmitted,
  CallOutcome,
  CallReport,
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
  LimiterView,
  LimitScope,
  ListAllFilters,
  ListFilters,
  NewBatchJob,
  NewJob,
  PermitGranted,
  PermitHeartbeatRequest,
  PermitLease,
  PermitRequest,
  Problem,
  ProblemCode,
  RateAllowed,
  RateCheck,
  RateLimitView,
  Reported,
} from "./types.js";
export { Worker } from "./worker.js";
export type { Handler, JobContext, WorkerErrorContext, WorkerStats, WorkOptions } from "./worker.js";
export type { components, operations, paths } from "./openapi.js";
