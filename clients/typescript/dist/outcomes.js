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
export class PermanentError extends Error {
    /** Makes the error; `options.cause` is kept as usual. */
    constructor(message, options) {
        super(message, options);
        this.name = "PermanentError";
    }
}
/** A failed attempt to retry after a given delay (`retry_in`) rather than the server's backoff. */
export class RetryError extends Error {
    /** Seconds until the retry, when given. */
    retryInSeconds;
    /** Makes the error. */
    constructor(message, options = {}) {
        super(message, options);
        this.name = "RetryError";
        this.retryInSeconds = options.retryInSeconds;
    }
}
/** Thrown by a handler: run the job again after `seconds`, without spending the attempt. */
export class SnoozeError extends Error {
    /** Seconds until the job runs again. */
    seconds;
    /** Makes the error. */
    constructor(seconds, message = `snoozed for ${seconds} s`) {
        super(message);
        this.name = "SnoozeError";
        this.seconds = seconds;
    }
}
const SNOOZE = Symbol.for("floodgate.snooze");
/** A handler's return value that puts the job back for `seconds` (0: at once), attempt unspent. */
export function snooze(seconds) {
    return Object.freeze({ [SNOOZE]: true, seconds });
}
/** Whether a handler's return value is a {@link Snooze}. */
export function isSnooze(value) {
    return typeof value === "object" && value !== null && value[SNOOZE] === true;
}
/** Whole seconds for the wire (rounded up, at least 0). */
export function wholeSeconds(seconds) {
    return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : 0;
}
