/**
 * The one error class of the client: every failed call rejects with a `FloodgateError`,
 * whether the server answered a problem document, answered something else, or could not be
 * reached. A call aborted through its own `AbortSignal` rejects with the signal's reason
 * instead, as `fetch` does.
 *
 * @module
 */

import type { Problem, ProblemCode } from "./types.js";

/**
 * Codes the client itself gives, when the server's answer carries none:
 * - `NETWORK_ERROR`: no answer (connection refused or reset, DNS, TLS); `cause` is the error.
 * - `REQUEST_TIMEOUT`: no answer within `timeoutMs`.
 * - `HTTP_ERROR`: an error status without a problem document (a proxy's 502 page, say).
 * - `INVALID_RESPONSE`: a success whose body is not the JSON expected.
 * - `WAIT_TIMEOUT`: `waitFor` gave up before the job finished.
 * - `CANCEL_REQUESTED`, `WORKER_STOPPED`: reasons a worker aborts a handler's signal
 *   (with the server's `LEASE_LOST` for a lost lease).
 */
export type ClientErrorCode =
  | "NETWORK_ERROR"
  | "REQUEST_TIMEOUT"
  | "HTTP_ERROR"
  | "INVALID_RESPONSE"
  | "WAIT_TIMEOUT"
  | "CANCEL_REQUESTED"
  | "WORKER_STOPPED";

/** Every code a `FloodgateError` may carry: the server's and the client's. */
export type ErrorCode = ProblemCode | ClientErrorCode;

/** What a `FloodgateError` is made of. */
export interface FloodgateErrorInit {
  /** The stable code to branch on. */
  code: ErrorCode;
  /** The HTTP status; 0 when there was no answer. */
  status: number;
  /** A short summary. */
  title: string;
  /** What went wrong, and what to do about it. */
  detail: string;
  /** Seconds to wait before trying again, from the `Retry-After` header. */
  retryAfter?: number | undefined;
  /** The problem document as the server sent it. */
  problem?: Problem | undefined;
  /** The underlying error (a network failure, say). */
  cause?: unknown;
}

/** Statuses worth retrying for an idempotent call. */
const TRANSIENT_STATUSES = new Set([429, 502, 503, 504]);

/** A failed call: a problem document from the server, or a failure to get an answer. */
export class FloodgateError extends Error {
  /** The stable code to branch on (a server code, or one of {@link ClientErrorCode}). */
  readonly code: ErrorCode;
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number;
  /** A short summary of the problem type. */
  readonly title: string;
  /** What went wrong in this request, and what to fix. */
  readonly detail: string;
  /** Seconds to wait before trying again (the `Retry-After` header), when the server said. */
  readonly retryAfter: number | undefined;
  /** The raw problem document, when the server sent one. */
  readonly problem: Problem | undefined;

  /** Makes an error; the message is `code (status): detail`. */
  constructor(init: FloodgateErrorInit) {
    super(`${init.code}${init.status ? ` (${init.status})` : ""}: ${init.detail}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "FloodgateError";
    this.code = init.code;
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail;
    this.retryAfter = init.retryAfter;
    this.problem = init.problem;
  }

  /**
   * Whether trying again may succeed: no answer (network failure, timeout), or 429, 502, 503,
   * 504. Only idempotent calls are retried on it.
   */
  get transient(): boolean {
    return this.code === "NETWORK_ERROR" || this.code === "REQUEST_TIMEOUT" || TRANSIENT_STATUSES.has(this.status);
  }
}

/** Whether `value` is a `FloodgateError` with `code` (any code when omitted). */
export function isFloodgateError(value: unknown, code?: ErrorCode): value is FloodgateError {
  return value instanceof FloodgateError && (code === undefined || value.code === code);
}

/**
 * Seconds from a `Retry-After` header: a number of seconds or an HTTP date; `undefined` when
 * absent or unreadable.
 */
export function parseRetryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** Whether `value` looks like the server's problem document. */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return typeof p.code === "string" && typeof p.status === "number" && typeof p.title === "string";
}
