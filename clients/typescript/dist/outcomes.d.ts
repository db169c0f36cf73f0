/**
 * How a handler says what became of its job, beyond returning a result (success) or throwing
 * any error (a failed attempt, retried with the server's exponential backoff until its
 * `max_attempts` are spent):
 *
 * - `throw new PermanentError(message)`: do not retry; the job goes `dead` now.
 * - `throw new RetryError(message, { retryInSeconds })`: a failed attempt, retried after
 *   exactly that delay instead of the server's backoff.
 * - `return snooze(seconds)` or `throw new SnoozeError(seconds)`: not a failure; the job runs
 *   again after `seconds` and the attempt is not spent (a rate limit said "later", say).
 *
 * @module
 */
/** A failure that must not be retried: the job goes `dead` with this message. */
export declare class PermanentError extends Error {
    /** Makes the error; `options.cause` is kept as usual. */
    constructor(message: string, options?: ErrorOptions);
}
/** Options of a {@link RetryError}. */
export interface RetryErrorOptions extends ErrorOptions {
    /** Retry after this many seconds (whole seconds, rounded up; default: the server's backoff). */
    retryInSeconds?: number;
}
/** A failed attempt to retry after a given delay (`retry_in`) rather than the server's backoff. */
export declare class RetryError extends Error {
    /** Seconds until the retry, when given. */
    readonly retryInSeconds: number | undefined;
    /** Makes the error. */
    constructor(message: string, options?: RetryErrorOptions);
}
/** Thrown by a handler: run the job again after `seconds`, without spending the attempt. */
export declare class SnoozeError extends Error {
    /** Seconds until the job runs again. */
    readonly seconds: number;
    /** Makes the error. */
    constructor(seconds: number, message?: string);
}
declare const SNOOZE: unique symbol;
/** What {@link snooze} returns; a handler returns it to put its job back for a while. */
export interface Snooze {
    /** Marks the value as a snooze (not a result). */
    readonly [SNOOZE]: true;
    /** Seconds until the job runs again. */
    readonly seconds: number;
}
/** A handler's return value that puts the job back for `seconds` (0: at once), attempt unspent. */
export declare function snooze(seconds: number): Snooze;
/** Whether a handler's return value is a {@link Snooze}. */
export declare function isSnooze(value: unknown): value is Snooze;
/** Whole seconds for the wire (rounded up, at least 0). */
export declare function wholeSeconds(seconds: number): number;
export {};
