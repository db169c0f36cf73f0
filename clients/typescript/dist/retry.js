/**
 * The retry policy of idempotent calls: exponential backoff with full jitter, honouring
 * `Retry-After`, and an abortable sleep.
 *
 * @module
 */
/** The default {@link RetryPolicy}. */
export const DEFAULT_RETRY_POLICY = Object.freeze({
    retries: 3,
    baseDelayMs: 100,
    maxDelayMs: 5_000,
    maxRetryAfterMs: 60_000,
});
/** A policy from the `retries` option: a number of retries, or some of the policy's fields. */
export function retryPolicy(option) {
    if (option === undefined)
        return { ...DEFAULT_RETRY_POLICY };
    const policy = typeof option === "number" ? { ...DEFAULT_RETRY_POLICY, retries: option } : { ...DEFAULT_RETRY_POLICY, ...option };
    if (!Number.isInteger(policy.retries) || policy.retries < 0) {
        throw new RangeError(`retries must be a whole number >= 0, not ${policy.retries}`);
    }
    return policy;
}
/** Full jitter: a random delay in [0, min(max, base * 2^attempt)) ms, attempt counted from 0. */
export function backoffMs(attempt, baseDelayMs, maxDelayMs) {
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 30));
    return Math.random() * ceiling;
}
/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms, signal) {
    if (signal?.aborted)
        return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal.reason);
        };
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, Math.max(0, ms));
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}
