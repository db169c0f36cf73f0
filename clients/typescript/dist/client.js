/**
 * `Floodgate`: the client of a floodgate server. Producers enqueue and follow jobs; workers
 * use `work()` (or the lease-fenced calls below it: claim, heartbeat, complete, fail, snooze).
 *
 * @module
 */
import { FloodgateError } from "./errors.js";
import { retryPolicy, sleep } from "./retry.js";
import { Transport } from "./transport.js";
import { FINISHED_STATES, } from "./types.js";
import { Worker } from "./worker.js";
const enc = encodeURIComponent;
/** A client of one floodgate server. Cheap to share; every call is independent. */
export class Floodgate {
    #transport;
    #timeoutMs;
    /** A client; no request is sent until a call. */
    constructor(options) {
        const baseUrl = String(options.baseUrl).replace(/\/+$/, "");
        if (!/^https?:\/\//.test(baseUrl))
            throw new TypeError(`baseUrl must be an http(s) URL, not ${JSON.stringify(baseUrl)}`);
        const fetchFn = options.fetch ?? globalThis.fetch;
        if (typeof fetchFn !== "function")
            throw new TypeError("no fetch: pass options.fetch or run on Node.js 20 or later");
        const timeoutMs = options.timeoutMs ?? 30_000;
        if (!(timeoutMs > 0))
            throw new RangeError(`timeoutMs must be > 0, not ${timeoutMs}`);
        this.#timeoutMs = timeoutMs;
        this.#transport = new Transport({
            baseUrl,
            token: options.token,
            fetch: fetchFn,
            retry: retryPolicy(options.retries),
            timeoutMs,
        });
    }
    /**
     * Enqueues one job (`POST /v1/jobs`). With `idempotencyKey` (sent as `Idempotency-Key`) a
     * repeat returns the first job (`duplicate: true`) and the call is retried on transient
     * failures; without one it is sent once and never retried.
     */
    async enqueue(job, options = {}) {
        const key = options.idempotencyKey;
        const answer = await this.#transport.request({
            method: "POST",
            path: "/v1/jobs",
            body: job,
            headers: key === undefined ? undefined : { "idempotency-key": key },
            idempotent: key !== undefined,
            signal: options.signal,
        });
        return answer.data;
    }
    /**
     * Enqueues up to 1,000 jobs in one transaction (`{"jobs": [...]}`); one {@link Accepted} per
     * job, in order. Retried on transient failures only with `idempotencyKey`.
     */
    async enqueueMany(jobs, options = {}) {
        const key = options.idempotencyKey;
        const answer = await this.#transport.request({
            method: "POST",
            path: "/v1/jobs",
            body: { jobs },
            headers: key === undefined ? undefined : { "idempotency-key": key },
            idempotent: key !== undefined,
            signal: options.signal,
        });
        return answer.data.jobs;
    }
    /** A job (`GET /v1/jobs/{id}`). */
    async get(id, options = {}) {
        return (await this.#getWithRetryAfter(id, options)).data;
    }
    #getWithRetryAfter(id, options) {
        return this.#transport.request({ method: "GET", path: `/v1/jobs/${id}`, idempotent: true, signal: options.signal });
    }
    /** One page of jobs, newest first (`GET /v1/jobs`); pass `next` as `cursor` for the next. */
    async list(filters = {}, options = {}) {
        const answer = await this.#transport.request({
            method: "GET",
            path: "/v1/jobs",
            query: { ...filters },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Every job matching `filters`, newest first, fetching page after page (`next` as `cursor`). */
    async *listAll(filters = {}, options = {}) {
        let cursor;
        for (;;) {
            const page = await this.list(cursor === undefined ? filters : { ...filters, cursor }, options);
            yield* page.jobs;
            if (page.next === undefined || page.next === null)
                return;
            cursor = page.next;
        }
    }
    /**
     * Cancels a job (`POST /v1/jobs/{id}/cancel`): a waiting one at once; a running one is asked
     * to stop (its worker sees it at the next heartbeat) and the answer's state is `running`.
     */
    async cancel(id, options = {}) {
        const answer = await this.#transport.request({ method: "POST", path: `/v1/jobs/${id}/cancel`, idempotent: true, signal: options.signal });
        return answer.data;
    }
    /** Runs a dead or cancelled job again with fresh attempts (`POST /v1/jobs/{id}/retry`). */
    async retry(id, options = {}) {
        const answer = await this.#transport.request({ method: "POST", path: `/v1/jobs/${id}/retry`, idempotent: true, signal: options.signal });
        return answer.data;
    }
    /**
     * Polls the job until it has finished (`succeeded`, `dead` or `cancelled`) and resolves with
     * it, waiting between polls as long as the server's `Retry-After` says.
     */
    async waitFor(id, options = {}) {
        const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
        for (;;) {
            const { data: job, retryAfter } = await this.#getWithRetryAfter(id, options);
            if (FINISHED_STATES.includes(job.state))
                return job;
            const left = deadline - Date.now();
            if (left <= 0) {
                throw new FloodgateError({
                    code: "WAIT_TIMEOUT",
                    status: 0,
                    title: "Job not finished in time",
                    detail: `job ${id} was still ${job.state} after ${options.timeoutMs} ms`,
                });
            }
            await sleep(Math.min((retryAfter ?? 1) * 1000, left), options.signal);
        }
    }
    /**
     * Claims up to `limit` jobs of `queue` (`POST /v1/queues/{queue}/claim`), each with a lease
     * token. Not idempotent (a repeat would claim other jobs), so never retried here.
     */
    async claim(queue, options) {
        const wait = options.wait ?? 0;
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/queues/${enc(queue)}/claim`,
            body: {
                worker: options.worker,
                limit: options.limit ?? 1,
                wait,
                kinds: options.kinds,
                lease_ttl: options.leaseTtl,
            },
            idempotent: false,
            signal: options.signal,
            timeoutMs: this.#timeoutFor(wait),
        });
        return { jobs: answer.data.jobs, retryAfter: answer.retryAfter };
    }
    /** A claim's timeout: the client's, plus the long poll's wait. */
    #timeoutFor(waitSeconds) {
        return this.#timeoutMs + waitSeconds * 1000;
    }
    /** Extends one job's lease (`POST /v1/jobs/{id}/heartbeat`); lease-fenced, so retried. */
    async heartbeat(id, leaseToken, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/jobs/${id}/heartbeat`,
            body: { lease_token: leaseToken, lease_ttl: options.leaseTtl, worker: options.worker },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Extends every lease a worker holds in one request (`POST /v1/jobs/heartbeat`, 1..=1000 jobs). */
    async heartbeatMany(worker, jobs, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: "/v1/jobs/heartbeat",
            body: { worker, lease_ttl: options.leaseTtl, jobs },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Marks a job succeeded with `result` (`POST /v1/jobs/{id}/complete`); 409 `LEASE_LOST` if no longer held. */
    async complete(id, leaseToken, result, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/jobs/${id}/complete`,
            body: { lease_token: leaseToken, result },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Marks many jobs succeeded in one statement (`POST /v1/jobs/complete`, 1..=1000 jobs). */
    async completeMany(jobs, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: "/v1/jobs/complete",
            body: { jobs },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Records a failed attempt (`POST /v1/jobs/{id}/fail`): retried later, or dead. */
    async fail(id, leaseToken, options) {
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/jobs/${id}/fail`,
            body: { lease_token: leaseToken, error: options.error, permanent: options.permanent ?? false, retry_in: options.retryIn },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /**
     * Puts a held job back to run after `delaySeconds` without spending its attempt
     * (`POST /v1/jobs/{id}/snooze`); 0 releases it for another worker at once.
     */
    async snooze(id, leaseToken, delaySeconds, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/jobs/${id}/snooze`,
            body: { lease_token: leaseToken, delay: delaySeconds },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Starts a worker on one queue; see {@link WorkOptions}. It runs until `stop()` (or a signal). */
    work(options) {
        return new Worker(this, options);
    }
}
