/**
 * The one error class of the client: every failed call rejects with a `FloodgateError`,
 * whether the server answered a problem document, answered something else, or could not be
 * reached. A call aborted through its own `AbortSignal` rejects with the signal's reason
 * instead, as `fetch` does.
 *
 * @module
 */
/** Statuses worth retrying for an idempotent call. */
const TRANSIENT_STATUSES = new Set([429, 502, 503, 504]);
/** A failed call: a problem document from the server, or a failure to get an answer. */
export class FloodgateError extends Error {
    /** The stable code to branch on (a server code, or one of {@link ClientErrorCode}). */
    code;
    /** The HTTP status; 0 when there was no answer. */
    status;
    /** A short summary of the problem type. */
    title;
    /** What went wrong in this request, and what to fix. */
    detail;
    /** Seconds to wait before trying again (the `Retry-After` header), when the server said. */
    retryAfter;
    /** The raw problem document, when the server sent one. */
    problem;
    /** Makes an error; the message is `code (status): detail`. */
    constructor(init) {
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
    get transient() {
        return this.code === "NETWORK_ERROR" || this.code === "REQUEST_TIMEOUT" || TRANSIENT_STATUSES.has(this.status);
    }
}
/** Whether `value` is a `FloodgateError` with `code` (any code when omitted). */
export function isFloodgateError(value, code) {
    return value instanceof FloodgateError && (code === undefined || value.code === code);
}
/**
 * Seconds from a `Retry-After` header: a number of seconds or an HTTP date; `undefined` when
 * absent or unreadable.
 */
export function parseRetryAfter(header) {
    if (header === null)
        return undefined;
    const text = header.trim();
    if (/^\d+$/.test(text))
        return Number(text);
    const at = Date.parse(text);
    if (Number.isNaN(at))
        return undefined;
    return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
/** Whether `value` looks like the server's problem document. */
export function isProblem(value) {
    if (typeof value !== "object" || value === null)
        return false;
    const p = value;
    return typeof p.code === "string" && typeof p.status === "number" && typeof p.title === "string";
}
