/**
 * A job a worker holds while its handler runs, the abort reasons its signal may carry, and
 * what a handler's ending means for the report.
 *
 * @module
 */

import { FloodgateError } from "./errors.js";
import { isSnooze, PermanentError, RetryError, SnoozeError, wholeSeconds } from "./outcomes.js";
import type { ClaimedJob } from "./types.js";

/** A claimed job whose handler runs (or ran) in this worker. */
export interface Held {
  /** The job as claimed. */
  readonly job: ClaimedJob;
  /** Aborts the handler's signal. */
  readonly controller: AbortController;
  /** `running` until the handler settles. */
  phase: "running" | "reporting";
  /** Lost, or released at shutdown: whatever the handler ends with is not reported. */
  abandoned: boolean;
  /** Shutdown aborted the handler: a success is still reported, anything else releases the job. */
  releasing: boolean;
}

/** What to tell the server once a handler has settled. */
export type Outcome =
  | { type: "complete"; result: unknown }
  | { type: "fail"; error: string; permanent: boolean; retryIn: number | undefined }
  | { type: "snooze"; seconds: number };

/** The longest error text sent (the rest is cut). */
const MAX_ERROR_LENGTH = 4_000;

/** A new held job. */
export function hold(job: ClaimedJob): Held {
  return { job, controller: new AbortController(), phase: "running", abandoned: false, releasing: false };
}

/** The outcome of a handler that returned `value`. */
export function returned(value: unknown): Outcome {
  return isSnooze(value) ? { type: "snooze", seconds: wholeSeconds(value.seconds) } : { type: "complete", result: value };
}

/** The outcome of a handler that threw `error`. */
export function threw(error: unknown): Outcome {
  if (error instanceof SnoozeError) return { type: "snooze", seconds: wholeSeconds(error.seconds) };
  const text = describeError(error);
  if (error instanceof PermanentError) return { type: "fail", error: text, permanent: true, retryIn: undefined };
  if (error instanceof RetryError) {
    const retryIn = error.retryInSeconds === undefined ? undefined : wholeSeconds(error.retryInSeconds);
    return { type: "fail", error: text, permanent: false, retryIn };
  }
  return { type: "fail", error: text, permanent: false, retryIn: undefined };
}

/** An error as the job's `last_error`: `Name: message` (plain `Error`s by message alone). */
export function describeError(error: unknown): string {
  let text: string;
  if (error instanceof Error) {
    const name = error.name === "Error" ? "" : `${error.name}: `;
    text = `${name}${error.message}`;
  } else {
    text = String(error);
  }
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH)}...` : text;
}

/** The reason a handler's signal aborts when the server asks for the job's cancellation. */
export function cancelReason(id: number): FloodgateError {
  return new FloodgateError({
    code: "CANCEL_REQUESTED",
    status: 0,
    title: "Cancel requested",
    detail: `job ${id} was cancelled: stop, and return or throw (a throw ends it cancelled)`,
  });
}

/** The reason a handler's signal aborts when the job's lease is lost. */
export function lostReason(id: number): FloodgateError {
  return new FloodgateError({
    code: "LEASE_LOST",
    status: 409,
    title: "Lease lost",
    detail: `job ${id} is no longer held by this worker (its lease expired and it was taken back); nothing it does now is reported`,
  });
}

/**
 * The reason a handler's signal aborts when the worker stops before the handler ended (and the
 * reason its claim in flight is aborted, without a job).
 */
export function stoppedReason(id?: number): FloodgateError {
  return new FloodgateError({
    code: "WORKER_STOPPED",
    status: 0,
    title: "Worker stopped",
    detail: id === undefined ? "the worker is stopping" : `the worker is stopping and job ${id} is being released for another worker`,
  });
}
