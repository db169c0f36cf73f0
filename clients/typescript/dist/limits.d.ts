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
import type { BreakerState, CallAdmitted, LimitScope, PermitGranted } from "./types.js";
/**
 * The longest wait one acquire request asks for unless told otherwise (the server's default
 * `max_wait`, in seconds); a longer total wait is spent in several requests.
 */
export declare const DEFAULT_MAX_WAIT = 30;
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
    rateLimit?: {
        name: string;
        key: string;
        cost?: number;
    };
    /** Then a permit of the limiter `name` held while the call runs (see {@link PermitOptions}). */
    permit?: {
        name: string;
    } & Omit<PermitOptions, "signal" | "onError">;
    /** Then the call goes through this breaker (a name, or a name and a `classify`). */
    breaker?: string | ({
        name: string;
    } & Omit<BreakerCallOptions, "signal">);
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
/**
 * Acquires a permit of `limiter`, waiting up to `options.wait` seconds in all: one long poll of
 * at most `maxWait` seconds after another while no permit came and time is left. Any answer
 * but `ACQUIRE_TIMEOUT` (a permit, `QUEUE_FULL`, `LIMITER_UNAVAILABLE`, `NOT_FOUND`, ...)
 * ends it; the caller's signal aborts the request in flight, and the server then drops the
 * wait (no permit is left behind).
 */
export declare function acquireWithin(client: Floodgate, limiter: string, options?: PermitOptions): Promise<PermitGranted>;
/**
 * Runs `fn` while holding a permit of `limiter` (see {@link Floodgate.withPermit}): acquires
 * one ({@link acquireWithin}), heartbeats it every `heartbeatIntervalMs`, and releases it once
 * `fn` settles. `fn`'s error wins over anything else; when `fn` returns but the permit was
 * lost meanwhile (a heartbeat or the release answered `PERMIT_LOST`), the call rejects with
 * that `PERMIT_LOST` error, as the limit may not have held.
 */
export declare function withPermit<T>(client: Floodgate, limiter: string, fn: (context: PermitContext) => Promise<T> | T, options?: PermitOptions): Promise<T>;
/**
 * Reads a `RateLimit` header field (`"name";r=2;t=20`, items separated by commas): the item
 * named `name`, else the first; `undefined` when absent or unreadable.
 */
export declare function parseRateLimit(header: string | null | undefined, name?: string): RateLimitField | undefined;
/** A named circuit breaker of the server; `client.breaker(name)` makes one (cheap, stateless). */
export declare class Breaker {
    #private;
    /** The breaker (`[breakers.NAME]`). */
    readonly name: string;
    /** A breaker handle; nothing is sent until a call. */
    constructor(client: Floodgate, name: string, options?: BreakerOptions);
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
    call<T>(fn: (context: BreakerCallContext) => Promise<T> | T, options?: BreakerCallOptions): Promise<T>;
    /** Closes the breaker and forgets its window (`POST /v1/breakers/{name}/reset`). */
    reset(options?: CallOptions): Promise<BreakerState>;
}
/**
 * Runs `fn` behind the guards in `options`, in this order: a rate check (a refusal rejects
 * with a `FloodgateError` `RATE_LIMITED`, status 429, `retryAfter` in seconds, before anything
 * else happens), a permit held while the rest runs, and a call through the breaker.
 */
export declare function guarded<T>(client: Floodgate, fn: (context: GuardContext) => Promise<T> | T, options?: GuardOptions): Promise<T>;
