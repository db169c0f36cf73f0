/**
 * `Floodgate`: the client of a floodgate server. Producers enqueue and follow jobs; workers
 * use `work()` (or the lease-fenced calls below it: claim, heartbeat, complete, fail, snooze).
 *
 * @module
 */
import { FloodgateError } from "./errors.js";
import { Breaker, guarded, parseRateLimit, withPermit, } from "./limits.js";
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
    // Limits as a service: permits, rate limits and breakers (see ./limits.ts).
    /**
     * Runs `fn` while holding a permit of the limiter `name` (`[limiters.NAME]`): waits up to
     * `options.wait` seconds in all for one (long polls of at most `maxWait` each; 0, the
     * default, takes one only if free now), heartbeats it every `heartbeatIntervalMs` (a third
     * of the lease) while `fn` runs, and releases it when `fn` settles, also when it throws.
     *
     * `fn` gets `{ signal, permit }`; `signal` aborts when the permit is lost (reason: a
     * `FloodgateError` `PERMIT_LOST`) or `options.signal` aborts. Rejects with `fn`'s error when
     * it throws; with `PERMIT_LOST` when `fn` returned but the permit was lost meanwhile; before
     * `fn` runs, with `QUEUE_FULL` or `ACQUIRE_TIMEOUT` (429), `LIMITER_UNAVAILABLE` (503) or
     * `NOT_FOUND` (no such limiter). Aborting `options.signal` while waiting aborts the request:
     * the server drops the wait and no permit is left behind.
     */
    withPermit(name, fn, options = {}) {
        return withPermit(this, name, fn, options);
    }
    /**
     * One permit request (`POST /v1/limiters/{name}/permits`), waiting up to `options.wait`
     * seconds (at most the limiter's `max_wait`). Not retried (a repeat could take a second
     * permit). Heartbeat the permit within its `lease_ttl` and release it; or use
     * {@link withPermit}.
     */
    async acquirePermit(name, options = {}) {
        const wait = options.wait ?? 0;
        const body = { priority: options.priority, wait, lease_ttl: options.leaseTtl, holder: options.holder };
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/limiters/${enc(name)}/permits`,
            body,
            idempotent: false,
            signal: options.signal,
            timeoutMs: this.#timeoutFor(wait),
        });
        return answer.data;
    }
    /**
     * Extends a permit's lease by its own `lease_ttl` (or `leaseTtl` seconds) from now
     * (`POST /v1/permits/{id}/heartbeat`); 409 `PERMIT_LOST` once its lease ran out.
     */
    async heartbeatPermit(permitId, options = {}) {
        const body = { lease_ttl: options.leaseTtl };
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/permits/${enc(permitId)}/heartbeat`,
            body,
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /**
     * Releases a permit (`DELETE /v1/permits/{id}`; again: still a success); 409 `PERMIT_LOST`
     * when its lease ran out first (its slot was taken back already).
     */
    async releasePermit(permitId, options = {}) {
        await this.#transport.request({ method: "DELETE", path: `/v1/permits/${enc(permitId)}`, idempotent: true, signal: options.signal });
    }
    /** Every configured limiter with its live counts (`GET /v1/limiters`). */
    async listLimiters(options = {}) {
        const answer = await this.#transport.request({ method: "GET", path: "/v1/limiters", idempotent: true, signal: options.signal });
        return answer.data.limiters;
    }
    /** Changes a limiter's limit at run time (`PUT /v1/limiters/{name}`); shrinking revokes no permit. */
    async setLimit(name, maxConcurrency, options = {}) {
        const answer = await this.#transport.request({
            method: "PUT",
            path: `/v1/limiters/${enc(name)}`,
            body: { max_concurrency: maxConcurrency },
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /**
     * Takes `cost` (default 1) from `key`'s allowance under the rate limit `name`
     * (`POST /v1/rate-limits/{name}/check`). A refusal (429 `RATE_LIMITED`) is not thrown: it
     * resolves `allowed: false` with `retryAfter` (seconds, from `Retry-After`). Fields the body
     * lacks are read from the `RateLimit` header. Rejects with `RATE_LIMIT_UNAVAILABLE` (503)
     * when Redis cannot answer under a closed policy. Not retried (a repeat takes again).
     */
    async rateCheck(name, key, options = {}) {
        const body = { key, cost: options.cost };
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/rate-limits/${enc(name)}/check`,
            body,
            idempotent: false,
            signal: options.signal,
            answerProblems: ["RATE_LIMITED"],
        });
        const field = parseRateLimit(answer.headers.get("ratelimit"), name);
        if (answer.status === 429) {
            return {
                allowed: false,
                remaining: field?.remaining ?? 0,
                resetAfter: field?.resetAfter ?? answer.retryAfter ?? 0,
                retryAfter: answer.retryAfter ?? field?.resetAfter,
                enforced: true,
                scope: undefined,
            };
        }
        const allowed = answer.data;
        return {
            allowed: true,
            remaining: allowed?.remaining ?? field?.remaining ?? 0,
            resetAfter: allowed?.reset_after ?? field?.resetAfter ?? 0,
            retryAfter: undefined,
            enforced: allowed?.enforced ?? true,
            scope: allowed?.scope,
        };
    }
    /** Every configured rate limit with its counts (`GET /v1/rate-limits`). */
    async listRateLimits(options = {}) {
        const answer = await this.#transport.request({ method: "GET", path: "/v1/rate-limits", idempotent: true, signal: options.signal });
        return answer.data.rate_limits;
    }
    /**
     * The breaker `name` (`[breakers.NAME]`): `call(fn, { classify?, signal? })` runs `fn`
     * through it (admitted, timed, reported) and `reset()` closes it. See {@link Breaker}.
     */
    breaker(name, options = {}) {
        return new Breaker(this, name, options);
    }
    /**
     * Admits one call through the breaker `name` (`POST /v1/breakers/{name}/calls`); 503
     * `BREAKER_OPEN` with `retryAfter` while open. Not retried (each admission is a call the
     * server waits a report for). Report it with {@link reportCall} by `report_by`.
     */
    async admitCall(name, options = {}) {
        const answer = await this.#transport.request({ method: "POST", path: `/v1/breakers/${enc(name)}/calls`, idempotent: false, signal: options.signal });
        return answer.data;
    }
    /**
     * Reports an admitted call's outcome (`POST /v1/breakers/{name}/calls/{call_id}`); 409
     * `CALL_EXPIRED` when reported already or past its deadline (then it counted failed).
     */
    async reportCall(name, callId, report, options = {}) {
        const answer = await this.#transport.request({
            method: "POST",
            path: `/v1/breakers/${enc(name)}/calls/${enc(callId)}`,
            body: report,
            idempotent: true,
            signal: options.signal,
        });
        return answer.data;
    }
    /** Closes the breaker `name` and forgets its window (`POST /v1/breakers/{name}/reset`). */
    async resetBreaker(name, options = {}) {
        const answer = await this.#transport.request({ method: "POST", path: `/v1/breakers/${enc(name)}/reset`, idempotent: true, signal: options.signal });
        return answer.data;
    }
    /** Every configured breaker with its live state (`GET /v1/breakers`). */
    async listBreakers(options = {}) {
        const answer = await this.#transport.request({ method: "GET", path: "/v1/breakers", idempotent: true, signal: options.signal });
        return answer.data.breakers;
    }
    /**
     * Runs `fn` behind each guard `options` names, in this order: a rate check (`rateLimit`; a
     * refusal rejects with a `FloodgateError` `RATE_LIMITED`, status 429, `retryAfter` seconds,
     * and nothing else happens), a permit (`permit`, as {@link withPermit}) held while the rest
     * runs, and a call through a breaker (`breaker`, as {@link Breaker.call}). `fn` gets
     * `{ signal, rate, permit, call }`.
     */
    guarded(fn, options = {}) {
        return guarded(this, fn, options);
    }
}
