/**
 * Limits as a service, around the client's single requests (`acquirePermit`, `rateCheck`,
 * `admitCall`, ...):
 *
 * - {@link withPermit}: runs a function while holding a permit of a named concurrency limiter,
 *   waiting for one as long as asked (long polls of at most the limiter's `max_wait` each),
 *   heartbeating it in the background and releasing it afterwards, even when the function
 *   throws.
 * - {@link Breaker}: a call through a named circuit breaker, admitted, timed and reported.
 * - {@link guarded}: one call behind a rate limit, a permit and a breaker, in that order.
 * - {@link parseRateLimit}: the IETF `RateLimit` header field of a rate check.
 *
 * @module
 */

import type { CallOptions, Floodgate } from "./client.js";
import { FloodgateError, isFloodgateError } from "./errors.js";
import { sleep } from "./retry.js";
import type { BreakerState, CallAdmitted, CallOutcome, LimitScope, PermitGranted } from "./types.js";

/**
 * The longest wait one acquire request asks for unless told otherwise (the server's default
 * `max_wait`, in seconds); a longer total wait is spent in several requests.
 */
export const DEFAULT_MAX_WAIT = 30;

/** The longest error text a breaker report carries (the server keeps at most 1,000 characters). */
const MAX_ERROR_CHARS = 1_000;

/** What a background failure of the limits happened during. */
export interface LimitsErrorContext {
  /** A permit's `heartbeat` or `release`, or a breaker call's `report`. */
  during: "heartbeat" | "release" | "report";
  /** The limiter or breaker. */
  name: string;
}

/** Told about a failure that does not decide the call's outcome (default: a `console.warn` line). */
export type LimitsErrorHandler = (error: unknown, context: LimitsErrorContext) => void;

/** Options of one acquire request ({@link Floodgate.acquirePermit}). */
export interface AcquireOptions extends CallOptions {
  /** 1 (lowest) to 10 (highest), default 5: waiters are served highest first. */
  priority?: number;
  /**
   * Seconds this request waits for a permit, 0 (default: answer at once) up to the limiter's
   * `max_wait`. Without a permit by then it rejects with `ACQUIRE_TIMEOUT` (429).
   */
  wait?: number;
  /** Seconds the permit lives without a heartbeat, 1 to 3600 (default: the limiter's). */
  leaseTtl?: number;
  /** Who holds it, for the server's log (at most 200 characters). */
  holder?: string;
}

/** Options of {@link Floodgate.withPermit}. */
export interface PermitOptions extends CallOptions {
  /** 1 (lowest) to 10 (highest), default 5: waiters are served highest first. */
  priority?: number;
  /**
   * Seconds to wait for a permit in all (default 0: take one only if free now). Spent in long
   * polls of at most `maxWait` each; without a permit by then, `ACQUIRE_TIMEOUT`.
   */
  wait?: number;
  /** The limiter's `max_wait`: the longest wait one request may ask (s, default 30). */
  maxWait?: number;
  /** Seconds the permit lives without a heartbeat, 1 to 3600 (default: the limiter's). */
  leaseTtl?: number;
  /** Who holds it, for the server's log (at most 200 characters). */
  holder?: string;
  /** Between heartbeats, in ms (default a third of the permit's lease). */
  heartbeatIntervalMs?: number;
  /** Told about heartbeats and releases that failed (default: a `console.warn` line). */
  onError?: LimitsErrorHandler;
}

/** What the function run under a permit gets. */
export interface PermitContext {
  /**
   * Aborts when the permit is lost (its lease ran out or the server no longer knows it; the
   * reason is a `FloodgateError` with code `PERMIT_LOST`) or the caller's signal aborts (its
   * reason). Pass it on to `fetch` and the like.
   */
  readonly signal: AbortSignal;
  /** The permit held. */
  readonly permit: PermitGranted;
}

/** Options of {@link Floodgate.rateCheck}. */
export interface RateCheckOptions extends CallOptions {
  /** Cells this call takes, 1 up to the burst (default 1). */
  cost?: number;
}

/** What a rate check decided. */
export interface RateDecision {
  /** Whether the call may go ahead (its cost was taken). */
  allowed: boolean;
  /** Calls the key may still make at once (0 when refused). */
  remaining: number;
  /** Seconds until the key's allowance is full again. */
  resetAfter: number;
  /** When refused: seconds until a call of this cost may be allowed (`Retry-After`). */
  retryAfter: number | undefined;
  /** `false` when the server could not reach Redis and its open policy let the call through. */
  enforced: boolean;
  /** Allowed: `local` (this server's count) or `fleet` (every server's); refused: undefined. */
  scope: LimitScope | undefined;
}

/** One item of a `RateLimit` header field: `"name";r=REMAINING;t=RESET_SECONDS`. */
export interface RateLimitField {
  /** The policy's name. */
  name: string;
  /** `r`: what the key may still take. */
  remaining: number | undefined;
  /** `t`: seconds until the allowance is full again. */
  resetAfter: number | undefined;
}

/** How a failed call through a breaker counts: against the service, or not at all. */
export type FailureClass = "failure" | "ignored";

/** Options of {@link Floodgate.breaker}. */
export interface BreakerOptions {
  /** Told about reports that failed (default: a `console.warn` line). */
  onError?: LimitsErrorHandler;
}

/** Options of {@link Breaker.call}. */
export interface BreakerCallOptions extends CallOptions {
  /**
   * How an error `fn` threw counts (default `failure`; the caller's own abort, the signal's
   * reason, counts `ignored`). `ignored` neither opens nor closes the breaker.
   */
  classify?: (error: unknown) => FailureClass;
}

/** What the function called through a breaker gets. */
export interface BreakerCallContext {
  /** The caller's signal (one that never aborts without it). */
  readonly signal: AbortSignal;
  /** The admitted call (`probe`: it is a half-open trial). */
  readonly call: CallAdmitted;
}

/** Options of {@link Floodgate.guarded}: each guard is optional. */
export interface GuardOptions extends CallOptions {
  /** First a rate check of `key` under the rate limit `name`; a refusal rejects `RATE_LIMITED`. */
  rateLimit?: { name: string; key: string; cost?: number };
  /** Then a permit of the limiter `name` held while the call runs (see {@link PermitOptions}). */
  permit?: { name: string } & Omit<PermitOptions, "signal" | "onError">;
  /** Then the call goes through this breaker (a name, or a name and a `classify`). */
  breaker?: string | ({ name: string } & Omit<BreakerCallOptions, "signal">);
  /** Told about background failures of the permit and the breaker (default: `console.warn`). */
  onError?: LimitsErrorHandler;
}

/** What the function run by {@link Floodgate.guarded} gets. */
export interface GuardContext {
  /** Aborts when the permit is lost or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** The rate check's decision, with a rate limit. */
  readonly rate: RateDecision | undefined;
  /** The permit held, with a permit. */
  readonly permit: PermitGranted | undefined;
  /** The breaker's admitted call, with a breaker. */
  readonly call: CallAdmitted | undefined;
}

/** The default {@link LimitsErrorHandler}: one `console.warn` line. */
function warn(error: unknown, context: LimitsErrorContext): void {
  console.warn(`floodgate: ${context.during} of ${JSON.stringify(context.name)} failed: ${String(error)}`);
}

/** `handler`, made unable to throw into the caller's path. */
function safe(handler: LimitsErrorHandler | undefined): LimitsErrorHandler {
  const h = handler ?? warn;
  return (error, context) => {
    try {
      h(error, context);
    } catch {
      // ignored: the callback's own failure has nowhere better to go
    }
  };
}

/** A signal that never aborts, for a context without the caller's. */
function never(): AbortSignal {
  return new AbortController().signal;
}

/**
 * The error for a permit the server no longer holds: its `PERMIT_LOST` as is, or a
 * `PERMIT_LOST` made from a `NOT_FOUND` (a server restarted, or an id ended long ago).
 */
function permitLost(error: unknown, permitId: string): FloodgateError | undefined {
  if (isFloodgateError(error, "PERMIT_LOST")) return error;
  if (isFloodgateError(error, "NOT_FOUND")) {
    return new FloodgateError({
      code: "PERMIT_LOST",
      status: error.status,
      title: "Permit lost",
      detail: `the server no longer knows the permit ${JSON.stringify(permitId)} (restarted, or it ended long ago): ${error.detail}`,
      problem: error.problem,
      cause: error,
    });
  }
  return undefined;
}

/**
 * Acquires a permit of `limiter`, waiting up to `options.wait` seconds in all: one long poll of
 * at most `maxWait` seconds after another while no permit came and time is left. Any answer
 * but `ACQUIRE_TIMEOUT` (a permit, `QUEUE_FULL`, `LIMITER_UNAVAILABLE`, `NOT_FOUND`, ...)
 * ends it; the caller's signal aborts the request in flight, and the server then drops the
 * wait (no permit is left behind).
 */
export async function acquireWithin(client: Floodgate, limiter: string, options: PermitOptions = {}): Promise<PermitGranted> {
  const total = options.wait ?? 0;
  const maxWait = options.maxWait ?? DEFAULT_MAX_WAIT;
  if (!(total >= 0 && Number.isFinite(total))) throw new RangeError(`wait must be a number of seconds >= 0, not ${total}`);
  if (!(maxWait > 0 && Number.isFinite(maxWait))) throw new RangeError(`maxWait must be a number of seconds > 0, not ${maxWait}`);
  const deadline = Date.now() + total * 1000;
  for (let polls = 1; ; polls++) {
    const chunk = Math.min(Math.max(0, (deadline - Date.now()) / 1000), maxWait);
    const started = Date.now();
    try {
      return await client.acquirePermit(limiter, {
        priority: options.priority,
        wait: chunk,
        leaseTtl: options.leaseTtl,
        holder: options.holder,
        signal: options.signal,
      });
    } catch (error) {
      if (!isFloodgateError(error, "ACQUIRE_TIMEOUT")) throw error;
      const left = deadline - Date.now();
      // Less than 10 ms left is not worth another request.
      if (left < 10) {
        if (polls === 1) throw error;
        throw new FloodgateError({
          code: error.code,
          status: error.status,
          title: error.title,
          detail: `no permit of ${JSON.stringify(limiter)} was free within ${total} s (${polls} long polls)`,
          retryAfter: error.retryAfter,
          problem: error.problem,
          cause: error,
        });
      }
      // A server with no long-poll slot free answers at once: pause instead of asking again
      // in a tight loop.
      if (Date.now() - started < chunk * 1000 - 50) {
        await sleep(Math.min((error.retryAfter ?? 1) * 1000, left), options.signal);
      }
    }
  }
}

/**
 * Runs `fn` while holding a permit of `limiter` (see {@link Floodgate.withPermit}): acquires
 * one ({@link acquireWithin}), heartbeats it every `heartbeatIntervalMs`, and releases it once
 * `fn` settles. `fn`'s error wins over anything else; when `fn` returns but the permit was
 * lost meanwhile (a heartbeat or the release answered `PERMIT_LOST`), the call rejects with
 * that `PERMIT_LOST` error, as the limit may not have held.
 */
export async function withPermit<T>(client: Floodgate, limiter: string, fn: (context: PermitContext) => Promise<T> | T, options: PermitOptions = {}): Promise<T> {
  const onError = safe(options.onError);
  if (options.heartbeatIntervalMs !== undefined && !(options.heartbeatIntervalMs > 0)) {
    throw new RangeError(`heartbeatIntervalMs must be > 0, not ${options.heartbeatIntervalMs}`);
  }
  const permit = await acquireWithin(client, limiter, options);
  const id = permit.permit_id;
  const outer = options.signal;
  if (outer?.aborted) {
    // Aborted just as the permit came: give it back rather than start fn.
    await client.releasePermit(id).catch((error) => {
      if (permitLost(error, id) === undefined) onError(error, { during: "release", name: limiter });
    });
    throw outer.reason;
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer!.reason);
  outer?.addEventListener("abort", onAbort, { once: true });

  let lost: FloodgateError | undefined;
  const markLost = (error: FloodgateError) => {
    lost ??= error;
    if (!controller.signal.aborted) controller.abort(lost);
  };
  const intervalMs = options.heartbeatIntervalMs ?? (permit.lease_ttl * 1000) / 3;
  const beats = new PermitHeartbeats(client, id, intervalMs, options.leaseTtl, {
    lost: markLost,
    failed: (error) => onError(error, { during: "heartbeat", name: limiter }),
  });
  beats.start();

  let result: T;
  try {
    result = await fn({ signal: controller.signal, permit });
  } catch (error) {
    await finish();
    throw error;
  }
  await finish();
  if (lost !== undefined) throw lost;
  return result;

  async function finish(): Promise<void> {
    outer?.removeEventListener("abort", onAbort);
    await beats.stop();
    if (lost !== undefined) return; // nothing left to release
    try {
      // Not the caller's signal: an aborted caller still gives the permit back.
      await client.releasePermit(id);
    } catch (error) {
      const gone = permitLost(error, id);
      if (gone !== undefined) lost ??= gone;
      else onError(error, { during: "release", name: limiter });
    }
  }
}

/** What {@link PermitHeartbeats} tells its owner. */
interface PermitHeartbeatHost {
  /** The server no longer holds the permit. */
  lost(error: FloodgateError): void;
  /** A heartbeat failed otherwise (the next interval tries again). */
  failed(error: unknown): void;
}

/** Extends one permit's lease every interval until stopped or lost. */
class PermitHeartbeats {
  readonly #client: Floodgate;
  readonly #id: string;
  readonly #intervalMs: number;
  readonly #leaseTtl: number | undefined;
  readonly #host: PermitHeartbeatHost;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #beat: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(client: Floodgate, id: string, intervalMs: number, leaseTtl: number | undefined, host: PermitHeartbeatHost) {
    this.#client = client;
    this.#id = id;
    this.#intervalMs = intervalMs;
    this.#leaseTtl = leaseTtl;
    this.#host = host;
  }

  start(): void {
    this.#schedule();
  }

  /** Stops the timer and aborts a heartbeat in flight; resolves once it has settled. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#beat;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#beat = this.#tick().finally(() => this.#schedule());
    }, this.#intervalMs);
  }

  async #tick(): Promise<void> {
    try {
      await this.#client.heartbeatPermit(this.#id, { leaseTtl: this.#leaseTtl, signal: this.#abort.signal });
    } catch (error) {
      if (this.#stopped) return;
      const gone = permitLost(error, this.#id);
      if (gone === undefined) {
        this.#host.failed(error);
        return;
      }
      this.#stopped = true;
      this.#host.lost(gone);
    }
  }
}

/**
 * Reads a `RateLimit` header field (`"name";r=2;t=20`, items separated by commas): the item
 * named `name`, else the first; `undefined` when absent or unreadable.
 */
export function parseRateLimit(header: string | null | undefined, name?: string): RateLimitField | undefined {
  if (header === null || header === undefined) return undefined;
  const items: RateLimitField[] = [];
  for (const member of splitOutside(header, ",")) {
    const [head, ...params] = splitOutside(member, ";").map((s) => s.trim());
    if (head === undefined || head === "") continue;
    const field: RateLimitField = { name: unquote(head), remaining: undefined, resetAfter: undefined };
    for (const param of params) {
      const eq = param.indexOf("=");
      if (eq < 0) continue;
      const value = Number(unquote(param.slice(eq + 1).trim()));
      if (!Number.isFinite(value)) continue;
      const key = param.slice(0, eq).trim();
      if (key === "r") field.remaining = value;
      else if (key === "t") field.resetAfter = value;
    }
    items.push(field);
  }
  return items.find((f) => f.name === name) ?? items[0];
}

/** `text` split at each `separator` outside a quoted string. */
function splitOutside(text: string, separator: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === "\\") i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === separator) {
      parts.push(text.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(text.slice(from));
  return parts;
}

/** A structured field's string without its quotes and escapes (a token as it is). */
function unquote(text: string): string {
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1).replace(/\\(.)/g, "$1") : text;
}

/** A named circuit breaker of the server; `client.breaker(name)` makes one (cheap, stateless). */
export class Breaker {
  /** The breaker (`[breakers.NAME]`). */
  readonly name: string;
  readonly #client: Floodgate;
  readonly #onError: LimitsErrorHandler;

  /** A breaker handle; nothing is sent until a call. */
  constructor(client: Floodgate, name: string, options: BreakerOptions = {}) {
    this.#client = client;
    this.name = name;
    this.#onError = safe(options.onError);
  }

  /**
   * Calls `fn` through the breaker: asks the server to admit the call
   * (`POST /v1/breakers/{name}/calls`); while the breaker is open that rejects with a
   * `FloodgateError` `BREAKER_OPEN` (503, `retryAfter` in seconds) and `fn` is not called.
   * Otherwise `fn` runs, timed, and its outcome is reported: `success` with its duration when
   * it returns (the server judges slowness from it), or `failure` with the error's message
   * (or what `classify` says) when it throws, the error then rethrown as is. A report that
   * cannot be delivered goes to `onError` and never changes the outcome; an unreported call
   * counts failed at its deadline.
   */
  async call<T>(fn: (context: BreakerCallContext) => Promise<T> | T, options: BreakerCallOptions = {}): Promise<T> {
    const call = await this.#client.admitCall(this.name, { signal: options.signal });
    const started = performance.now();
    let result: T;
    try {
      result = await fn({ signal: options.signal ?? never(), call });
    } catch (error) {
      const aborted = options.signal?.aborted === true && error === options.signal.reason;
      const outcome: CallOutcome = options.classify?.(error) ?? (aborted ? "ignored" : "failure");
      await this.#report(call, outcome, performance.now() - started, error);
      throw error;
    }
    await this.#report(call, "success", performance.now() - started, undefined);
    return result;
  }

  /** Closes the breaker and forgets its window (`POST /v1/breakers/{name}/reset`). */
  reset(options: CallOptions = {}): Promise<BreakerState> {
    return this.#client.resetBreaker(this.name, options);
  }

  async #report(call: CallAdmitted, outcome: CallOutcome, durationMs: number, error: unknown): Promise<void> {
    try {
      await this.#client.reportCall(this.name, call.call_id, {
        outcome,
        duration_ms: Math.max(0, durationMs),
        error: outcome === "success" ? undefined : errorText(error),
      });
    } catch (failure) {
      this.#onError(failure, { during: "report", name: this.name });
    }
  }
}

/** An error's message for a report, at most {@link MAX_ERROR_CHARS} characters. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  const chars = Array.from(text);
  return chars.length > MAX_ERROR_CHARS ? chars.slice(0, MAX_ERROR_CHARS).join("") : text;
}

/**
 * Runs `fn` behind the guards in `options`, in this order: a rate check (a refusal rejects
 * with a `FloodgateError` `RATE_LIMITED`, status 429, `retryAfter` in seconds, before anything
 * else happens), a permit held while the rest runs, and a call through the breaker.
 */
export async function guarded<T>(client: Floodgate, fn: (context: GuardContext) => Promise<T> | T, options: GuardOptions = {}): Promise<T> {
  let rate: RateDecision | undefined;
  if (options.rateLimit !== undefined) {
    const { name, key, cost } = options.rateLimit;
    rate = await client.rateCheck(name, key, { cost, signal: options.signal });
    if (!rate.allowed) {
      throw new FloodgateError({
        code: "RATE_LIMITED",
        status: 429,
        title: "Rate limited",
        detail: `${JSON.stringify(key)} is over the rate limit ${JSON.stringify(name)}${rate.retryAfter === undefined ? "" : `; retry in ${rate.retryAfter} s`}`,
        retryAfter: rate.retryAfter,
      });
    }
  }
  const breakerOption = typeof options.breaker === "string" ? { name: options.breaker } : options.breaker;
  const run = (signal: AbortSignal, permit: PermitGranted | undefined): Promise<T> => {
    if (breakerOption === undefined) return Promise.resolve().then(() => fn({ signal, rate, permit, call: undefined }));
    const { name, ...callOptions } = breakerOption;
    return new Breaker(client, name, { onError: options.onError }).call(({ call }) => fn({ signal, rate, permit, call }), { ...callOptions, signal });
  };
  if (options.permit === undefined) return run(options.signal ?? never(), undefined);
  const { name, ...permitOptions } = options.permit;
  return withPermit(client, name, ({ signal, permit }) => run(signal, permit), { ...permitOptions, signal: options.signal, onError: options.onError });
}
