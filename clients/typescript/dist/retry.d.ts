/**
 * The retry policy of idempotent calls: exponential backoff with full jitter, honouring
 * `Retry-After`, and an abortable sleep.
 *
 * @module
 */
/** How idempotent calls retry transient failures (network errors, 429, 502, 503, 504). */
export interface RetryPolicy {
    /** Retries after the first try (0: never retry). Default 3. */
    retries: number;
    /** The first backoff's ceiling in ms; it doubles per retry. Default 100. */
    baseDelayMs: number;
    /** The largest backoff ceiling in ms. Default 5,000. */
    maxDelayMs: number;
    /**
     * The longest `Retry-After` honoured, in ms; an answer asking for longer is not retried
     * (its error carries `retryAfter` for the caller). Default 60,000.
     */
    maxRetryAfterMs: number;
}
/** The default {@link RetryPolicy}. */
export declare const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy>;
/** A policy from the `retries` option: a number of retries, or some of the policy's fields. */
export declare function retryPolicy(option: number | Partial<RetryPolicy> | undefined): RetryPolicy;
/** Full jitter: a random delay in [0, min(max, base * 2^attempt)) ms, attempt counted from 0. */
export declare function backoffMs(attempt: number, baseDelayMs: number, maxDelayMs: number): number;
/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export declare function sleep(ms: number, signal?: AbortSignal): Promise<void>;
